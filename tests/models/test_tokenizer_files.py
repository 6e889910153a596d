"""TokenizerFiles (tokenizers alone) reads the same special tokens, added tokens and ids as
transformers' AutoTokenizer, for every tiny family's real tokenizer."""

import pytest
from transformers import AutoTokenizer

from runner.models import resolve_base
from runner.models.tokenizer_files import TokenizerFiles
from runner.prompt.template import load_template
from runner.train import labels

FAMILIES = ["tiny:qwen2", "tiny:llama", "tiny:deepseek-coder"]


@pytest.mark.parametrize("base", FAMILIES)
def test_same_tokens_as_transformers(base):
    folder = resolve_base(base)
    ours, theirs = TokenizerFiles(folder), AutoTokenizer.from_pretrained(folder)
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        assert getattr(ours, key) == getattr(theirs, key), key
    assert {i: (t.content, t.special) for i, t in ours.added_tokens_decoder.items()} == {
        i: (t.content, t.special) for i, t in theirs.added_tokens_decoder.items()
    }
    assert ours.added_tokens_decoder, "the added special tokens were not read"
    text = "def f(x):\n    return x  # <|im_end|> </s>"
    assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)


def test_zephyr_on_qwen_pads_with_a_token_the_template_never_writes():
    # Qwen's pad token is its eos, which zephyr writes after every turn: padding must move to
    # another special token (found among tokenizer.json's added tokens).
    folder = resolve_base("tiny:qwen2")
    template = load_template("zephyr", folder)
    pad, note = labels.pad_override(TokenizerFiles(folder), [template.end_of_turn], template.source)
    assert pad in {"<|im_start|>", "<|im_end|>"}
    assert "end-of-turn" in note
