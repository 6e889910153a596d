"""Broken recipes and the exact messages users see: file, line, column, key path, message."""

from __future__ import annotations

import pytest

from runner.cli import main
from runner.recipe.load import load_recipe
from runner.recipe.problems import RecipeErrors

HEADER = """\
recipe: 1
name: demo
sources:
  - type: instructions
    path: data.jsonl
model:
  base: tiny:qwen2
"""

# (recipe text appended after HEADER, expected "line:col: key: message" of the single error)
CASES = [
    ("trian:\n  epochs: 1\n", "8:1: trian: unknown key 'trian'; did you mean 'train'?"),
    ("train:\n  epocs: 1\n", "9:3: train.epocs: unknown key 'epocs'; did you mean 'epochs'?"),
    ("train:\n  epochs: lots\n", "9:3: train.epochs: 'lots' is not valid here: expected a number"),
    (
        "train:\n  learning_rate: -1\n",
        "9:3: train.learning_rate: -1 is less than or equal to the minimum of 0",
    ),
    (
        "filters:\n  - type: min_lenght\n",
        "9:5: filters[0].type: 'min_lenght' is not a known filter; did you mean 'length'?",
    ),
    (
        "filters:\n  - type: near_dedup\n",
        "9:5: filters[0].type: 'near_dedup' is not a known filter; did you mean 'near_dedupe'?",
    ),
    ("filters:\n  - threshold: 0.5\n", "9:5: filters[0]: missing `type:`"),
    (
        "filters:\n  - type: near_dedupe\n    treshold: 0.5\n",
        "10:5: filters[0].treshold: unknown key 'treshold'; did you mean 'threshold'?",
    ),
    (
        "split:\n  train: 0.7\n  val: 0.2\n  test: 0.2\n",
        "8:1: split: split.train + split.val + split.test must be 1 (got 1.1)",
    ),
    (
        "prompt:\n  template: chatm\n",
        "9:3: prompt.template: 'chatm' is not a known template; did you mean 'chatml'?",
    ),
    (
        "compute:\n  gpus: 2\n",
        "8:1: compute.strategy: compute.gpus is 2: choose compute.strategy ddp, fsdp or deepspeed",
    ),
    (
        "export:\n  - type: gguf\n",
        "9:5: export[0]: a gguf export needs a merged model: add `- type: merge` to export",
    ),
    (
        "export:\n  - type: merge\n    enabled: false\n  - type: gguf\n",
        "10:5: export[0].enabled: export[1] (gguf) needs the merged model, but this merge is disabled",
    ),
    (
        "lora:\n  enabled: false\nexport:\n  - type: lora_gguf\n",
        "11:5: export[0]: lora_gguf exports the LoRA adapter, but lora.enabled is false",
    ),
    (
        "export:\n  - type: merge\n  - type: gguf\n    quantize: [q8_0]\n  - type: ollama\n    model: demo:v1\n    from: q4_k_m\n",
        "14:5: export[2].from: 'q4_k_m' is not produced by a gguf export (available: f16, q8_0)",
    ),
    (
        "export:\n  - type: merge\n  - type: gguf\n  - type: ollama\n    model: demo:v1\n    from: q8_0\n    parameters:\n      num_ctx: 1024\n",
        "15:7: export[2].parameters.num_ctx: num_ctx 1024 is below train.seq_len 2048",
    ),
    (
        "export:\n  - type: hubb\n    repo_id: a/b\n",
        "9:5: export[0].type: 'hubb' is not a known export target; did you mean 'hub'?",
    ),
    (
        "eval:\n  checks:\n    - type: sytnax\n",
        "10:7: eval.checks[0].type: 'sytnax' is not a known check; did you mean 'syntax'?",
    ),
    (
        "eval:\n  compare_base: false\n  gate:\n    min_improvement: 0.1\n",
        "11:5: eval.gate.min_improvement: eval.gate.min_improvement compares with the base model",
    ),
    (
        "train:\n  early_stopping_patience: 2\n",
        "9:3: train.early_stopping_patience: early stopping compares evaluations and keeps the best checkpoint: set train.eval_steps and train.save_steps too",
    ),
    (
        "train:\n  early_stopping_patience: 2\n  eval_steps: 30\n  save_steps: 50\n",
        "11:3: train.save_steps: train.save_steps (50) must be a multiple of train.eval_steps (30)",
    ),
    ("lora:\n  enabled: false\n", None),
]


@pytest.mark.parametrize(("extra", "expected"), CASES)
def test_single_mistake_is_reported_with_line_and_key(write, data_file, extra, expected):
    path = write("recipe.yaml", HEADER + extra)
    if expected is None:
        load_recipe(path)
        return
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(path)
    problems = caught.value.problems
    assert len(problems) == 1, str(caught.value)
    rendered = problems[0].render()
    assert expected in rendered, rendered
    assert rendered.startswith(str(path.name)) or str(path) in rendered


def test_three_mistakes_reported_at_once_with_exit_2(write, data_file, capsys):
    path = write(
        "recipe.yaml",
        HEADER + "train:\n  epocs: 1\nfilters:\n  - type: min_lenght\nsplit:\n  train: 2\n",
    )
    status = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert ":9:3: train.epocs: unknown key 'epocs'" in err
    assert ":11:5: filters[0].type: 'min_lenght' is not a known filter" in err
    assert ":13:3: split.train: 2 is greater than the maximum of 1" in err
    assert "3 errors in recipe" in err
    assert "Traceback" not in err
    # The offending line is shown under each error.
    assert "  10 |   - type: min_lenght" in err.replace("   11 |", "  11 |") or "min_lenght" in err


def test_missing_source_path_is_a_validation_error(write):
    path = write("recipe.yaml", HEADER.replace("data.jsonl", "missing.jsonl"))
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(path)
    assert "5:5: sources[0].path:" in caught.value.problems[0].render()
    assert "missing.jsonl does not exist" in caught.value.problems[0].message


def test_yaml_syntax_error_has_a_line(write):
    path = write("recipe.yaml", "recipe: 1\nname: [demo\n")
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(path)
    assert "YAML syntax error" in str(caught.value)
    assert ":3:" in str(caught.value) or ":2:" in str(caught.value)


def test_duplicate_key_is_an_error(write, data_file):
    path = write("recipe.yaml", HEADER + "train:\n  epochs: 1\n  epochs: 2\n")
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(path)
    assert "10:3" in str(caught.value) and "duplicate key 'epochs' (first set on line 9)" in str(
        caught.value
    )


def test_missing_file_exits_2_without_traceback(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "recipe file not found" in err and "Traceback" not in err


def test_qlora_without_cuda_is_a_warning_not_an_error(write, data_file, monkeypatch):
    monkeypatch.setattr("runner.recipe.rules.cuda_available", lambda: False)
    path = write("recipe.yaml", HEADER + "  quantization: 4bit\n")
    recipe = load_recipe(path)
    assert any("4-bit QLoRA needs a CUDA GPU" in w for w in recipe.warnings)


def test_absolute_path_warns_about_portability(write, data_file):
    path = write("recipe.yaml", HEADER.replace("data.jsonl", str(data_file)))
    recipe = load_recipe(path)
    assert any("will not work on other machines" in w for w in recipe.warnings)


def test_unconvertible_base_warns_at_validate_time(write, data_file, tmp_path):
    model = tmp_path / "foo-model"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["FooForCausalLM"], "model_type": "foo"}')
    text = (
        HEADER.replace("tiny:qwen2", "./foo-model") + "export:\n  - type: merge\n  - type: gguf\n"
    )
    recipe = load_recipe(write("recipe.yaml", text))
    joined = "\n".join(recipe.warnings)
    assert (
        "7:3: warning: model.base: llama.cpp's pinned converter does not support the architecture FooForCausalLM"
        in joined
    )


def test_unknown_tiny_model_suggests_the_closest(write, data_file):
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(write("recipe.yaml", HEADER.replace("tiny:qwen2", "tiny:qwen")))
    assert "7:3: model.base: 'qwen' is not a built-in tiny model; did you mean 'qwen2'?" in str(
        caught.value
    )


def test_a_base_fragment_alone_says_what_is_missing(write):
    path = write("base.yaml", "# shared settings\nrecipe: 1\nname: base\ntrain:\n  epochs: 1\n")
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(path)
    text = str(caught.value)
    assert "base.yaml:2:1: (top level): 'sources' is required" in text
    assert "base.yaml:2:1: (top level): 'model' is required" in text
