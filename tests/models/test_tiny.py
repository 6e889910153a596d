"""Built-in tiny models: real tokenizers, real templates, built once, cached, deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.models import TINY_MODELS, is_tiny, load_tokenizer, resolve_base
from runner.models.tiny import _build_model, family_template, tiny_spec, tokenizer_dir

pytestmark = pytest.mark.xdist_group("tiny-models")


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_sizes_let_k_quants_apply(name):
    config = TINY_MODELS[name].config
    assert config["hidden_size"] % 256 == 0
    assert config["intermediate_size"] % 256 == 0
    assert config["num_hidden_layers"] <= 4


def test_is_tiny():
    assert is_tiny("tiny:qwen2")
    assert not is_tiny("Qwen/Qwen2.5-Coder-7B")
    assert not is_tiny(Path("tiny:qwen2"))


def test_unknown_tiny_name_suggests_the_closest():
    with pytest.raises(UserError, match=r"did you mean 'tiny:qwen2'\?.*known: tiny:qwen2"):
        resolve_base("tiny:qwen")


@pytest.mark.slow
def test_tiny_qwen2_is_built_once_and_cached(monkeypatch):
    import runner.models.tiny as tiny

    first = resolve_base("tiny:qwen2")

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a cache hit must not rebuild")

    monkeypatch.setattr(tiny, "_build_model", no_rebuild)
    assert resolve_base("tiny:qwen2") == first
    names = {p.name for p in first.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    config = json.loads((first / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["vocab_size"] == 151936  # the real Qwen2 vocabulary, from llama.cpp's file


@pytest.mark.slow
def test_tiny_qwen2_keeps_the_real_eos_trap():
    """eos == pad == <|endoftext|>, while ChatML turns end with <|im_end|> (llama.cpp#9606)."""
    tokenizer = load_tokenizer("tiny:qwen2")
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == 151645
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    # The real Qwen2.5 template adds its default system prompt when none is given.
    assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


@pytest.mark.slow
def test_tiny_llama_has_the_llama2_special_tokens():
    """transformers' GGUF reader swaps bos/eos for SPM vocabularies; the build corrects it."""
    tokenizer = load_tokenizer("tiny:llama")
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (
        "<s>",
        "</s>",
        "<unk>",
    )
    assert tokenizer("Hello world")["input_ids"][0] == 1  # Llama-2 inserts BOS
    config = json.loads((resolve_base("tiny:llama") / "config.json").read_text())
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], tokenize=False
    )
    assert rendered == "<s>[INST] hi [/INST] yo </s>"


@pytest.mark.slow
def test_tiny_deepseek_coder_tokens():
    tokenizer = load_tokenizer("tiny:deepseek-coder")
    assert tokenizer.bos_token == "<｜begin▁of▁sentence｜>"
    assert tokenizer.eos_token == "<｜end▁of▁sentence｜>"
    # The template ends answers with <|EOT|>, which is not the tokenizer's eos: a real trap.
    assert "<|EOT|>" in family_template(tiny_spec("tiny:deepseek-coder"))
    assert len(tokenizer("<|EOT|>", add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.slow
def test_build_is_deterministic(tmp_path):
    spec = tiny_spec("tiny:llama")
    template = family_template(spec)
    tok_dir = tokenizer_dir(spec)
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        out.mkdir()
        _build_model(spec, template, tok_dir, out)
        digests.append(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_every_special_token_can_be_predicted(name):
    """No special token's embedding row is zero: with tied embeddings a zero row is a logit
    stuck at 0, and a LoRA could never teach the model to end its turn with that token (the
    initializer zeroes the pad row, and tiny:qwen2 pads with <|endoftext|>, the end of a zephyr
    turn)."""
    from safetensors.torch import load_file

    folder = resolve_base(f"tiny:{name}")
    config = json.loads((folder / "config.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    rows = weights["model.embed_tokens.weight"].float()
    ids = {config.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")} - {None}
    assert config.get("pad_token_id") in ids or config.get("pad_token_id") is None
    zero = [i for i in sorted(ids) if rows[i].abs().sum() == 0]
    assert zero == [], (name, zero)
