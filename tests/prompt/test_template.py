"""Loading chat templates: names, paths, the base tokenizer's own, sidecars, special tokens."""

from __future__ import annotations

import json

import pytest

from runner.errors import UserError
from runner.prompt import load_template, template_names
from runner.prompt.structure import probe_structure, verification_conversations
from runner.prompt.template import TEMPLATES_DIR
from tests.conftest import FAMILY_TOKENS

SHIPPED = ["alpaca", "chatml", "deepseek-coder", "llama2", "zephyr"]


def test_every_shipped_template_has_a_sidecar():
    assert template_names() == SHIPPED
    for name in SHIPPED:
        assert (TEMPLATES_DIR / f"{name}.yaml").is_file(), name


@pytest.mark.parametrize(
    ("name", "end_of_turn", "stop"),
    [
        ("chatml", "<|im_end|>", ("<|im_end|>", "<|im_start|>", "<|endoftext|>")),
        ("llama2", "</s>", ("</s>", "[INST]")),
        ("alpaca", "</s>", ("</s>", "### Instruction:", "### Response:")),
        ("deepseek-coder", "<|EOT|>", ("<|EOT|>", "### Instruction:", "<｜end▁of▁sentence｜>")),
        ("zephyr", "</s>", ("</s>", "<|user|>", "<|system|>")),
    ],
)
def test_sidecar_strings_without_a_tokenizer(name, end_of_turn, stop):
    template = load_template(name)
    assert (template.name, template.end_of_turn, template.stop) == (name, end_of_turn, stop)
    assert template.source == (TEMPLATES_DIR / f"{name}.jinja").read_text()


def test_eos_placeholders_follow_the_tokenizer():
    template = load_template("zephyr", eos_token="<|endoftext|>", bos_token=None)
    assert template.end_of_turn == "<|endoftext|>"
    assert template.stop == ("<|endoftext|>", "<|user|>", "<|system|>")


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("family", sorted(FAMILY_TOKENS))
def test_render_equals_apply_chat_template(name, family, make_tokenizer):
    tokens = FAMILY_TOKENS[family]
    template = load_template(name, **tokens)
    tokenizer = make_tokenizer(template.source, **tokens)
    for conversation in verification_conversations():
        for generation in (False, True):
            expected = tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=generation
            )
            assert template.render(conversation, add_generation_prompt=generation) == expected


@pytest.mark.parametrize("name", SHIPPED)
def test_end_of_turn_closes_every_answer(name):
    template = load_template(name)
    structure = probe_structure(
        template.source, bos_token=template.bos_token, eos_token=template.eos_token
    )
    assert structure.assistant_end.startswith(template.end_of_turn) or (
        structure.assistant_end.lstrip().startswith(template.end_of_turn)
    ), structure.assistant_end
    assert template.end_of_turn in structure.assistant_to_user


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError) as err:
        load_template("chatlm")
    message = str(err.value)
    assert "'chatlm' is not a known template; did you mean 'chatml'?" in message
    assert "alpaca, chatml, deepseek-coder, llama2, zephyr" in message


def test_template_path_with_sidecar(tmp_path):
    path = tmp_path / "mine.jinja"
    path.write_text("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}<END>{% endfor %}")
    (tmp_path / "mine.yaml").write_text('end_of_turn: "<END>"\nstop: ["<{{ eos_token }}>"]\n')
    template = load_template(str(path), eos_token="eos")
    assert (template.name, template.end_of_turn, template.stop) == (
        "mine",
        "<END>",
        ("<END>", "<eos>", "eos"),
    )
    assert template.render([{"role": "user", "content": "hi"}]) == "<user>hi<END>"


def test_template_path_without_sidecar_needs_a_tokenizer(tmp_path):
    path = tmp_path / "bare.jinja"
    path.write_text("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    with pytest.raises(UserError, match="no sidecar bare.yaml naming its end-of-turn string"):
        load_template(str(path))


def test_missing_template_file(tmp_path):
    with pytest.raises(UserError, match="no such template file"):
        load_template(str(tmp_path / "nope.jinja"))


def _save_tokenizer_files(folder, chat_template, added=("<|im_start|>", "<|im_end|>")):
    decoder = {str(i): {"content": t, "special": True} for i, t in enumerate(added)}
    config = {"eos_token": "<|endoftext|>", "bos_token": None, "added_tokens_decoder": decoder}
    if chat_template is not None:
        config["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def test_tokenizer_template_finds_its_end_of_turn(tmp_path):
    source = (TEMPLATES_DIR / "chatml.jinja").read_text()
    _save_tokenizer_files(tmp_path, source)
    template = load_template("tokenizer", tmp_path)
    assert template.name == "tokenizer"
    assert template.source == source
    assert template.end_of_turn == "<|im_end|>"
    assert template.stop == ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


def test_chat_template_jinja_file_wins_over_the_config(tmp_path):
    _save_tokenizer_files(tmp_path, "{{ 'old' }}")
    source = (TEMPLATES_DIR / "chatml.jinja").read_text()
    (tmp_path / "chat_template.jinja").write_text(source)
    assert load_template("tokenizer", tmp_path).source == source


def test_tokenizer_without_a_template(tmp_path):
    _save_tokenizer_files(tmp_path, None)
    with pytest.raises(UserError, match="has no chat_template"):
        load_template("tokenizer", tmp_path)
    with pytest.raises(UserError, match="no tokenizer folder is available"):
        load_template("tokenizer")


def test_a_turn_without_a_special_end_token_is_refused(tmp_path):
    # Answers end with a newline only: nothing a model could learn to stop on.
    _save_tokenizer_files(
        tmp_path, "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    )
    with pytest.raises(UserError, match="holds no special token of the tokenizer"):
        load_template("tokenizer", tmp_path)
