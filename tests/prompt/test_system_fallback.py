"""Templates that take no system message: found at validate time, and folded or dropped on
request, so that training, the GGUF's template and Ollama's TEMPLATE agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.prompt import load_template
from runner.prompt.gotemplate import ollama_template
from runner.prompt.template import system_support, with_system_fallback
from runner.recipe.problems import RecipeErrors
from tests.helpers import recipe_of

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GEMMA = {"bos_token": "<bos>", "eos_token": "<eos>"}
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Bye"},
]


def _fixture(name: str, tmp_path: Path, end_of_turn: str) -> str:
    path = tmp_path / name
    path.write_text((FIXTURES / name).read_text())
    path.with_suffix(".yaml").write_text(f'end_of_turn: "{end_of_turn}"\n')
    return str(path)


@pytest.mark.parametrize(
    ("name", "support"),
    [
        ("starcoder2-instruct.jinja", "refused"),
        ("mistral-instruct-v0.1.jinja", "refused"),
        ("phi-3-mini.jinja", "dropped"),
        ("llama-2-chat.jinja", "takes"),
    ],
)
def test_system_support(name, support):
    found, reason = system_support((FIXTURES / name).read_text(), "<s>", "</s>")
    assert found == support
    assert (reason is not None) == (support == "refused")


def test_fold_opens_the_first_user_turn(tmp_path):
    path = _fixture("mistral-instruct-v0.1.jinja", tmp_path, "</s>")
    template = load_template(path, bos_token="<s>", eos_token="</s>", system_fallback="fold")
    assert template.render(CONVERSATION, add_generation_prompt=True) == (
        "<s>[INST] Be brief.\n\nHi [/INST]Hello</s>[INST] Bye [/INST]"
    )
    # The Ollama TEMPLATE of the folded template folds $.System the same way, verified.
    derived = ollama_template(template)
    assert derived.structure.system == "first_user"
    assert "[INST] {{ if and $first $.System }}{{ $.System }}\n\n{{ end }}{{ .Content }}" in (
        derived.text
    )


def test_drop_leaves_it_out(tmp_path):
    path = _fixture("mistral-instruct-v0.1.jinja", tmp_path, "</s>")
    template = load_template(path, bos_token="<s>", eos_token="</s>", system_fallback="drop")
    assert template.render(CONVERSATION, add_generation_prompt=True) == (
        "<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]"
    )
    assert ollama_template(template).structure.system == "dropped"


def test_a_template_that_takes_a_system_message_is_left_alone():
    source = load_template("chatml").source
    assert with_system_fallback(source, "fold") == source
    folded = with_system_fallback((FIXTURES / "magicoder.jinja").read_text(), "fold", "<s>", "</s>")
    assert with_system_fallback(folded, "drop") == folded  # never wrapped twice


def test_validate_says_so_and_offers_the_choice(tmp_path):
    path = _fixture("starcoder2-instruct.jinja", tmp_path, "</s>")
    with pytest.raises(RecipeErrors) as err:
        recipe_of({"prompt": {"template": path, "system": "Be brief."}}, tmp_path)
    message = str(err.value)
    assert "prompt.system: the template" in message
    assert "refuses a system message (System messages are not allowed in this template.)" in message
    assert "choose prompt.system_fallback: fold" in message and "or drop" in message
    for choice in ("fold", "drop"):
        recipe = recipe_of(
            {"prompt": {"template": path, "system": "Be brief.", "system_fallback": choice}},
            tmp_path,
        )
        assert recipe.prompt.system_fallback == choice
    # Without prompt.system there is nothing to say.
    recipe_of({"prompt": {"template": path}}, tmp_path)


def test_a_fallback_a_template_does_not_need_is_a_warning(tmp_path):
    from runner.recipe.rules import system_prompt_fits_the_template

    recipe = recipe_of({"prompt": {"template": "chatml", "system_fallback": "fold"}}, tmp_path)
    [problem] = list(system_prompt_fits_the_template(recipe))
    assert problem.warning
    assert "takes a system message itself; prompt.system_fallback has no effect" in problem.message
