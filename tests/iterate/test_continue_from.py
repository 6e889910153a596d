"""continue_from without training: finding the parent, the refusals (with what differs), and the
parent in the stage keys. The runs that train from a parent are in test_continue_training.py."""

from __future__ import annotations

import json

import pytest

from runner.errors import UserError
from runner.models import resolve_base
from runner.prompt.template import load_template
from runner.run.keys import compute_keys
from runner.run.stages import enabled_stages
from runner.train.continue_from import check_parent, find_parent, starting_point
from tests.helpers import recipe_of
from tests.iterate.conftest import make_parent_run, write_instructions


@pytest.fixture
def parent(tmp_path, fitted_adapter):
    data = tmp_path / "parent-data"
    write_instructions(data / "train.jsonl.src", "old", 4)
    (data / "train.jsonl").write_text("")
    return make_parent_run(tmp_path, data, fitted_adapter)


def child(tmp_path, parent, **config):
    config.setdefault("lora", {"r": 8, "alpha": 16, "dropout": 0.0})
    return recipe_of(
        {"name": "child", "continue_from": {"run": str(parent)}, **config}, tmp_path / "child"
    )


def refusal(recipe) -> str:
    base_dir = resolve_base(recipe.model.base)
    template = load_template(recipe.prompt.template, base_dir).source
    with pytest.raises(UserError) as error:
        check_parent(recipe, base_dir, template)
    return str(error.value)


def test_the_three_kinds_of_parent(tmp_path, parent, fitted_adapter):
    run = find_parent(parent)
    assert run.kind == "run" and run.version == "v1" and run.name == "parent"
    assert run.adapter_dir == (parent / "train").resolve() and run.model_dir is None
    latest = tmp_path / "runs-of-parent"
    latest.mkdir()
    (latest / "latest").symlink_to(parent)
    assert find_parent(latest).path == parent.resolve()  # runs/<name>: its latest run
    assert find_parent(fitted_adapter).kind == "adapter"
    assert find_parent(resolve_base("tiny:qwen2")).kind == "model"
    with pytest.raises(UserError, match="neither a run folder"):
        find_parent(tmp_path / "parent-data")
    with pytest.raises(UserError, match="does not exist"):
        find_parent(tmp_path / "nowhere")


def test_a_matching_child_starts_from_the_parent(tmp_path, parent):
    recipe = child(tmp_path, parent, continue_from={"run": str(parent), "mode": "same_adapter"})
    base_dir = resolve_base("tiny:qwen2")
    start = starting_point(recipe, base_dir, load_template("chatml", base_dir).source)
    assert start.lora_model_dir == (parent / "train").resolve()
    assert start.base_model == base_dir
    assert start.to_json()["parent"]["version"] == "v1"


def test_same_adapter_refuses_a_different_lora_block(tmp_path, parent):
    recipe = child(
        tmp_path,
        parent,
        continue_from={"run": str(parent), "mode": "same_adapter"},
        lora={"r": 16, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj"]},
    )
    message = refusal(recipe)
    assert "lora.r is 16, the parent's adapter has 8" in message
    assert "lora.target_modules is ['q_proj'], the parent's adapter has" in message
    assert "alpha" not in message  # what matches is not listed


def test_a_mismatched_tokenizer_is_refused(tmp_path, parent):
    tokenizer = (parent / "train" / "tokenizer.json").resolve()
    data = json.loads(tokenizer.read_text())
    data["added_tokens"].append(
        {
            "id": 999999,
            "content": "<|zig|>",
            "special": True,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
        }
    )
    tokenizer.write_text(json.dumps(data))
    message = refusal(child(tmp_path, parent))
    assert "the tokenizer of tiny:qwen2" in message
    assert "differs from the one the parent was trained with" in message
    assert "model.base" not in message  # the base itself matches


def test_another_base_is_refused_with_everything_that_differs(tmp_path, parent):
    message = refusal(child(tmp_path, parent, model={"base": "tiny:llama"}))
    assert "model.base is tiny:llama, the parent was trained on tiny:qwen2" in message
    assert "the tokenizer of tiny:llama" in message
    assert "vocab_size" in message


def test_another_template_is_refused(tmp_path, parent):
    (parent / "train" / "template.json").write_text(
        json.dumps({"name": "zephyr", "source": load_template("zephyr").source})
    )
    message = refusal(child(tmp_path, parent))
    assert "prompt.template renders differently from the parent's chat template" in message


def test_the_parent_enters_the_stage_keys_by_its_identity(tmp_path, parent):
    recipe = child(
        tmp_path, parent, continue_from={"run": str(parent), "replay": {"fraction": 0.5}}
    )
    plain = recipe_of({"name": "child", "lora": {"r": 8, "alpha": 16}}, tmp_path / "child")
    stages = enabled_stages(recipe)
    keys = compute_keys(recipe, stages, None, save=False)
    assert keys.keys["train"] != compute_keys(plain, stages, None, save=False).keys["train"]
    assert not any(str(parent) in path for path in keys.inputs)  # not hashed as a folder
    lock = json.loads((parent / "run.lock.json").read_text())
    lock["stages"]["train"] = "u" * 64  # the parent was retrained
    (parent / "run.lock.json").write_text(json.dumps(lock))
    again = compute_keys(recipe, stages, None, save=False).keys
    assert again["train"] != keys.keys["train"] and again["data"] != keys.keys["data"]


def test_the_run_is_refused_before_any_stage(tmp_path, parent, monkeypatch):
    from runner import pipeline

    ran = []
    monkeypatch.setattr(pipeline, "load_stage", lambda name: ran.append(name))
    recipe = child(tmp_path, parent, model={"base": "tiny:llama"})
    with pytest.raises(UserError, match="cannot continue from"):
        pipeline.run_pipeline(recipe, root=tmp_path / "runs", say=lambda m: None)
    assert ran == [] and not list((tmp_path / "runs").rglob("run.lock.json"))


def test_rules_name_the_mode_conflicts(tmp_path, parent):
    from runner.recipe.problems import RecipeErrors

    with pytest.raises(RecipeErrors, match="mode full trains every weight"):
        child(tmp_path, parent, continue_from={"run": str(parent), "mode": "full"})
    with pytest.raises(RecipeErrors, match="LoRA GGUF over the base would be wrong"):
        child(tmp_path, parent, export=[{"type": "lora_gguf"}])
    recipe = child(tmp_path, parent, continue_from={"run": str(tmp_path / "later")})
    assert any("does not exist yet: run the parent recipe first" in w for w in recipe.warnings)
