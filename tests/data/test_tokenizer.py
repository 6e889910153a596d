"""Token counting shortcuts give the tokenizer's own answers on real files.

The data stage chunks by token counts, so its faster path (the tiktoken twin) must agree
exactly with the tokenizer; these tests compare them on real source files.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest

from runner.data.tiktoken_twin import twin_of
from runner.data.tokenizer import TokenCounter, chunk_text
from runner.data.units import unit_starts

from .conftest import tokenizer_json

STDLIB = Path(sysconfig.get_paths()["stdlib"])
ODD = [
    "",
    "x",
    "héllo wörld ünïcode 😀 中文字符 e\u0301 x\n",
    "   \n\n\t x  \r\n y\n\n\n",
    "a<|im_end|>b<|im_start|>user\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n```python\ndef f():\n"
    "    return 1\n```<|im_end|>\n<|im_start|>assistant\n",
    "=" * 500 + "\n" + " " * 300 + "\n",
]


def real_files(count: int, seed: int = 7) -> list[str]:
    """Texts of ``count`` standard-library modules of varied size, chosen by a seed."""
    files = sorted(p for p in STDLIB.glob("**/*.py") if "site-packages" not in p.parts)
    picked = random.Random(seed).sample(files, count)
    return [p.read_text(encoding="utf-8", errors="replace") for p in picked]


@pytest.fixture(scope="module")
def corpus():
    return real_files(25) + ODD


@pytest.fixture(scope="module", params=["qwen2", "deepseek-coder"])
def pair(request):
    from tokenizers import Tokenizer

    path = tokenizer_json(request.param)
    tokenizer = Tokenizer.from_file(str(path))
    twin = twin_of(path, tokenizer)
    assert twin is not None, f"{request.param}: a byte-level BPE tokenizer gets a twin"
    return tokenizer, twin


def test_twin_gives_the_tokenizers_ids_and_offsets(pair, corpus):
    tokenizer, twin = pair
    covered = [text for text in corpus if twin.covers(text)]
    assert len(covered) >= len(corpus) - 1  # only the decomposed "e\u0301" text is left out
    for text in covered:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        assert twin.encode(text) == encoded.ids, text[:80]
        assert twin.count(text) == len(encoded.ids)
        assert twin.token_starts(text) == [start for start, _ in encoded.offsets], text[:80]


def test_twin_leaves_non_nfc_text_to_a_normalising_tokenizer(pair):
    tokenizer, twin = pair
    decomposed = "cafe\u0301 au lait"
    normalises = tokenizer.normalizer is not None and "NFC" in repr(tokenizer.normalizer)
    assert twin.covers(decomposed) is not normalises
    if not normalises:
        assert twin.encode(decomposed) == tokenizer.encode(decomposed, add_special_tokens=False).ids


def test_sentencepiece_tokenizer_gets_no_twin():
    from tokenizers import Tokenizer

    path = tokenizer_json("llama")
    assert twin_of(path, Tokenizer.from_file(str(path))) is None


@pytest.mark.parametrize("limit", [64, 512, 2048])
def test_fast_chunks_equal_slow_chunks_on_real_files(tokens, hf_tokens, corpus, limit):
    for text in corpus:
        cuts = unit_starts(text, "python")[0]
        fast = chunk_text(text, limit, tokens, cuts)
        slow = chunk_text(text, limit, hf_tokens, cuts)
        assert fast == slow
        assert "".join(fast) == text


def test_counter_without_twin_still_counts(hf_tokens):
    assert hf_tokens.fast is None
    assert hf_tokens.count("def f():\n    return 1\n") > 0
    assert isinstance(hf_tokens, TokenCounter)
