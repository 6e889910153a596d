"""The Modelfile: FROM/ADAPTER, TEMPLATE, SYSTEM, stops, num_ctx and parameters."""

from __future__ import annotations

import os
import re
import stat

import pytest

from runner.errors import UserError
from runner.export import ollama
from runner.prompt import load_template
from runner.prompt.template import save_template
from runner.recipe.problems import RecipeErrors
from tests.helpers import recipe_of, run_stage
from tests.helpers import stage_context as pipeline_context

QWEN = {"bos_token": None, "eos_token": "<|endoftext|>"}


GGUF = [{"type": "merge"}, {"type": "gguf", "outtype": "f16", "quantize": ["q8_0", "q4_k_m"]}]
KEY = "0123456789" * 6 + "abcd"


def make_recipe(tmp_path, target=None, prompt=None, exports=None):
    target = {"type": "ollama", "model": "zig-expert:0.15", **(target or {})}
    config = {
        "name": "zig",
        "prompt": prompt or {"template": "chatml"},
        "train": {"seq_len": 4096},
        "export": [*(exports or GGUF), target],
    }
    return recipe_of(config, tmp_path)


def render(recipe, template, gguf, **kwargs):
    target = recipe.exports("ollama")[0]
    model = ollama.model_name(target, KEY, recipe)
    return ollama.render_modelfile(recipe, template, gguf, target=target, model=model, **kwargs)


def modelfile(recipe, **kwargs):
    template = load_template(recipe.prompt.template, **QWEN)
    return render(recipe, template, "../gguf/zig-q4_k_m.gguf", **kwargs)


def lines(text, prefix):
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_stops_num_ctx_and_parameters(tmp_path):
    recipe = make_recipe(
        tmp_path,
        {
            "parameters": {
                "temperature": 0.2,
                "top_k": 40,
                "repeat_penalty": 1.1,
                "stop": ["```\n\n"],
            }
        },
    )
    text = modelfile(recipe, special_stops=["<|endoftext|>", "<|im_end|>"])
    assert lines(text, "FROM ") == ["FROM ../gguf/zig-q4_k_m.gguf"]
    assert lines(text, "ADAPTER") == []
    assert lines(text, "PARAMETER") == [
        'PARAMETER stop "<|im_end|>"',
        'PARAMETER stop "<|im_start|>"',
        'PARAMETER stop "<|endoftext|>"',
        'PARAMETER stop """```',  # a stop with newlines is triple-quoted
        "PARAMETER num_ctx 4096",
        "PARAMETER temperature 0.2",
        "PARAMETER top_k 40",
        "PARAMETER repeat_penalty 1.1",
    ]
    assert 'PARAMETER stop """```\n\n"""\nPARAMETER num_ctx' in text
    assert 'TEMPLATE """{{- range $i, $_ := .Messages }}' in text
    assert "# TEMPLATE (the ChatML form) is generated from the chat template 'chatml'" in text
    assert "ollama create zig-expert:0.15 -f Modelfile" in text


def test_adapter_line(tmp_path):
    text = modelfile(make_recipe(tmp_path), adapter_relpath="../gguf/zig-lora-f16.gguf")
    assert lines(text, "ADAPTER") == ["ADAPTER ../gguf/zig-lora-f16.gguf"]


def test_num_ctx_never_below_the_training_length(tmp_path):
    recipe = make_recipe(tmp_path, {"parameters": {"num_ctx": 8192}})
    assert lines(modelfile(recipe), "PARAMETER num_ctx") == ["PARAMETER num_ctx 8192"]
    with pytest.raises(RecipeErrors, match="num_ctx 1024 is below train.seq_len 4096"):
        make_recipe(tmp_path, {"parameters": {"num_ctx": 1024}})


def test_system_from_the_prompt_or_the_export(tmp_path):
    fixed = make_recipe(tmp_path, prompt={"template": "chatml", "system": "You are terse."})
    assert 'SYSTEM """You are terse."""' in modelfile(fixed)
    per_example = make_recipe(
        tmp_path, prompt={"template": "chatml", "system": "Zig {{ meta.version }} expert."}
    )
    text = modelfile(per_example)
    assert "SYSTEM" not in "".join(lines(text, "SYSTEM"))
    assert "# note: no SYSTEM: prompt.system depends on each example (meta)" in text
    chosen = make_recipe(
        tmp_path,
        {"system": "You are a Zig 0.15 expert.\nBe brief."},
        prompt={"template": "chatml", "system": "Zig {{ meta.version }} expert."},
    )
    assert 'SYSTEM """You are a Zig 0.15 expert.\nBe brief."""' in modelfile(chosen)


def test_llama2_puts_the_system_prompt_in_the_first_turn(tmp_path):
    recipe = make_recipe(tmp_path, prompt={"template": "llama2", "system": "Be brief."})
    template = load_template(recipe.prompt.template)
    text = render(recipe, template, "x.gguf")
    assert "# TEMPLATE (the Llama 2 form)" in text
    assert "{{ if and $first $.System }}<<SYS>>\n{{ $.System }}\n<</SYS>>\n\n{{ end }}" in text
    assert 'SYSTEM """Be brief."""' in text
    assert lines(text, "PARAMETER stop") == ['PARAMETER stop "</s>"', 'PARAMETER stop "[INST]"']


def test_a_template_without_a_system_prompt_gets_no_system_line(tmp_path):
    gemma = tmp_path / "gemma.jinja"
    gemma.write_text(
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else "
        "m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    (tmp_path / "gemma.yaml").write_text('end_of_turn: "<end_of_turn>"\n')
    recipe = make_recipe(
        tmp_path,
        {"system": "Be brief."},
        prompt={"template": str(gemma)},
    )
    text = render(recipe, load_template(str(gemma), bos_token="<bos>", eos_token="<eos>"), "x.gguf")
    assert "SYSTEM" not in "".join(lines(text, "SYSTEM"))
    assert "# note: no SYSTEM: the chat template 'gemma' takes no system prompt" in text
    # With prompt.system_fallback: fold the template takes it, and so does the Modelfile.
    folded = load_template(str(gemma), bos_token="<bos>", eos_token="<eos>", system_fallback="fold")
    text = render(recipe, folded, "x.gguf")
    assert 'SYSTEM """Be brief."""' in text
    assert "{{ if and $first $.System }}{{ $.System }}\n\n{{ end }}" in text


def test_model_name_without_a_tag_is_tagged_with_the_stage_key(tmp_path):
    recipe = make_recipe(tmp_path, {"model": "zig-expert"})
    target = recipe.exports("ollama")[0]
    name = ollama.model_name(target, KEY, recipe)
    assert name == f"zig-expert:r{KEY[:10]}"
    # Another training (another key) never overwrites it.
    assert ollama.model_name(target, "f" * 64, recipe) != name
    tagged = make_recipe(tmp_path)
    assert ollama.model_name(tagged.exports("ollama")[0], KEY, tagged) == "zig-expert:0.15"


def test_model_name_defaults_to_name_and_version(tmp_path):
    from tests.helpers import recipe_of

    config = {"name": "meton", "version": "v2", "export": [*GGUF, {"type": "ollama"}]}
    recipe = recipe_of(config, tmp_path)
    target = recipe.exports("ollama")[0]
    assert target.model is None
    assert ollama.model_name(target, KEY, recipe) == "meton:v2"
    unversioned = recipe_of({**config, "version": None}, tmp_path)
    assert ollama.model_name(target, KEY, unversioned) == f"meton:r{KEY[:10]}"


def test_from_must_be_a_written_gguf(tmp_path):
    with pytest.raises(
        RecipeErrors, match="'q4_k_s' is not produced by a gguf export \\(available: f16, q4_k_m"
    ):
        make_recipe(tmp_path, {"from": "q4_k_s"})
    with pytest.raises(RecipeErrors, match="from: adapter needs a `- type: lora_gguf` export"):
        make_recipe(tmp_path, {"from": "adapter"})


def test_model_files(tmp_path):
    recipe = make_recipe(tmp_path, {"from": "q8_0"})
    assert ollama.model_files(recipe, recipe.exports("ollama")[0], tmp_path) == (
        tmp_path / "zig-q8_0.gguf",
        None,
    )
    adapter = make_recipe(
        tmp_path, {"from": "adapter"}, exports=[{"type": "lora_gguf", "outtype": "q8_0"}]
    )
    assert ollama.model_files(adapter, adapter.exports("ollama")[0], tmp_path) == (
        tmp_path / "zig-base-f16.gguf",
        tmp_path / "zig-lora-q8_0.gguf",
    )


def test_unconvertible_template_is_refused_with_the_reason(tmp_path):
    # Numbered turns: the text around a message depends on its position, not only its role.
    source = tmp_path / "numbered.jinja"
    source.write_text(
        "{% for m in messages %}[{{ loop.index }}] {{ m['role'] }}: {{ m['content'] }}<END>\n"
        "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    (tmp_path / "numbered.yaml").write_text('end_of_turn: "<END>"\n')
    recipe = make_recipe(tmp_path, prompt={"template": str(source)})
    template = load_template(recipe.prompt.template)
    with pytest.raises(UserError) as err:
        render(recipe, template, "x.gguf")
    message = str(err.value)
    assert message.startswith("chat template 'numbered' cannot be turned into an Ollama TEMPLATE")
    assert "the text before a user turn depends on more than its position" in message
    assert "'[3] user: ' and '[5] user: '" in message
    assert message.endswith(
        "or a .jinja whose text depends only on the roles and the positions of the turns"
    )


# --- the stage, on a real GGUF file --------------------------------------------------------


def write_vocab_gguf(path):
    """A vocab-only GGUF with Qwen2's special tokens as llama.cpp's converter writes them:
    <|endoftext|> as BOS (never added) and EOS, <|im_end|> as end of turn."""
    import gguf

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a"]
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_eot_token_id(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def stage_context(tmp_path, recipe):
    """The ollama stage's context over a run whose train stage used ChatML on Qwen2's tokens."""
    run_dir = tmp_path / "run"
    (run_dir / "gguf").mkdir(parents=True)
    (run_dir / "train").mkdir()
    save_template(load_template("chatml", **QWEN), run_dir / "train")
    write_vocab_gguf(run_dir / "gguf" / "zig-q4_k_m.gguf")
    return pipeline_context(run_dir, "ollama")


def test_stage_without_ollama_gives_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    recipe = make_recipe(tmp_path)
    ctx = stage_context(tmp_path, recipe)
    summary = run_stage(ollama.run, recipe, ctx).summary
    text = (ctx.out / "Modelfile").read_text()
    assert lines(text, "FROM ") == ["FROM ../gguf/zig-q4_k_m.gguf"]
    # No BOS in the TEMPLATE: Qwen's tokenizer has none, whatever the GGUF names.
    (go_template,) = re.findall(r'^TEMPLATE """(.*?)"""$', text, flags=re.S | re.M)
    assert "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n" in go_template
    assert "<|endoftext|>" not in go_template
    # The GGUF's eos and eot tokens are stops too.
    assert 'PARAMETER stop "<|endoftext|>"' in text and 'PARAMETER stop "<|im_end|>"' in text
    (model,) = summary["models"]
    assert model["created"] is False
    assert (
        model["create_command"]
        == f"ollama create zig-expert:0.15 -f {ctx.run_dir / 'ollama' / 'Modelfile'}"
    )
    # The pipeline prints stage notes; the command is one of them.
    assert any(model["create_command"] in note for note in ctx.notes)


def test_stage_runs_ollama_create_with_absolute_paths(tmp_path, monkeypatch):
    # No Ollama can be installed here: a stand-in binary records how it is called.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ollama"
    fake.write_text(
        '#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\n'
        'grep "^FROM " "$4" | cut -c6- > "$(dirname "$0")/from"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    recipe = make_recipe(tmp_path, {"create": "always"})
    ctx = stage_context(tmp_path, recipe)
    summary = run_stage(ollama.run, recipe, ctx).summary
    assert summary["models"][0]["created"] is True
    assert (bin_dir / "args").read_text().startswith("create zig-expert:0.15 -f ")
    assert (bin_dir / "from").read_text().strip() == str(
        (ctx.run_dir / "gguf" / "zig-q4_k_m.gguf").resolve()
    )
    assert not list(ctx.out.glob(".*.create"))


def test_an_ollama_bases_own_template_is_used_only_when_it_renders_the_training_template(
    tmp_path,
):
    from runner.prompt.gotemplate import ollama_template

    recipe = make_recipe(tmp_path)
    template = load_template("chatml", **QWEN)
    derived = ollama_template(template).text
    # Ollama's library ChatML with whitespace trimmed differently: the same text rendered.
    own = derived.replace("{{- range $i, $_ := .Messages }}", "{{ range $i, $_ := .Messages -}}")
    assert own != derived
    text = modelfile(recipe, own_template=("qwen2.5-coder:1.5b", own))
    assert "# TEMPLATE is qwen2.5-coder:1.5b's own: it renders the same text" in text
    assert f'TEMPLATE """{own}"""' in text
    # A legacy template that renders only the last prompt is not the training template.
    text = modelfile(recipe, own_template=("old:1", "{{ .Prompt }}"))
    assert f'TEMPLATE """{derived}"""' in text
    assert "# old:1's own TEMPLATE is not used: it does not render the training template" in text
