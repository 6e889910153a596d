"""Token counting shortcuts give the tokenizer's own answers on real files.

The data stage chunks by token counts, so its faster paths (the tiktoken twin, the byte bound
that skips tokenizing, the unit start lines without building units) must agree exactly with the
slow ones; these tests compare them on real source files.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path

import pytest

from runner.data.tiktoken_twin import twin_of
from runner.data.tokenizer import TokenCounter, chunk_text, surely_fits
from runner.data.units import parse_units, unit_start_lines

from .conftest import REPO, tokenizer_json

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


def test_twin_is_cached_per_tokenizer_file(corpus, tmp_path, monkeypatch):
    """The second build of a twin reads the user cache (no BPE check) and answers the same; a
    negative verdict is cached too; a damaged entry is computed again."""
    from tokenizers import Tokenizer

    qwen, llama = tokenizer_json("qwen2"), tokenizer_json("llama")  # built before the switch
    monkeypatch.setenv("RECIPE_RUNNER_CACHE", str(tmp_path))
    tokenizer = Tokenizer.from_file(str(qwen))
    first = twin_of(qwen, tokenizer)
    [entry] = (tmp_path / "token-twins").glob("twin-*")
    second = twin_of(qwen, tokenizer)
    (entry / "tokens.bin").write_bytes(b"damaged")
    third = twin_of(qwen, tokenizer)
    for twin in (first, second, third):
        assert twin is not None
        for text in corpus[:8] + corpus[-3:]:
            encoded = tokenizer.encode(text, add_special_tokens=False)
            assert twin.encode(text) == encoded.ids
            assert twin.token_starts(text) == [start for start, _ in encoded.offsets]
    assert twin_of(llama, Tokenizer.from_file(str(llama))) is None
    assert len(list((tmp_path / "token-twins").glob("twin-*"))) == 2
    assert twin_of(llama, Tokenizer.from_file(str(llama))) is None


@pytest.mark.parametrize("family", ["qwen2", "deepseek-coder", "llama"])
def test_byte_bound_holds_for_every_builtin_tokenizer(family, corpus):
    """``surely_fits`` skips tokenizing texts of at most limit - 1 bytes: no text may have more
    tokens than bytes + 1 (llama's normaliser prepends a word marker)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json(family)))
    for text in corpus:
        count = len(tokenizer.encode(text, add_special_tokens=False).ids)
        assert count <= len(text.encode("utf-8")) + 1, (family, text[:80])
        assert not surely_fits(text, count - 1), (family, text[:80])


@pytest.mark.parametrize("limit", [64, 512, 2048])
def test_fast_chunks_equal_slow_chunks_on_real_files(tokens, hf_tokens, corpus, limit):
    for text in corpus:
        cuts, _ = unit_start_lines(text, "python")
        fast = chunk_text(text, limit, tokens, cuts)
        slow = chunk_text(text, limit, hf_tokens, cuts)
        assert fast == slow
        assert "".join(fast) == text


def test_unit_start_lines_equal_parsed_units(corpus):
    samples = [(text, "python") for text in corpus]
    for path in (REPO / "tests").rglob("*.py"):
        samples.append((path.read_text(encoding="utf-8"), "python"))
    for text, language in samples:
        units, parses = parse_units(text, language)
        assert unit_start_lines(text, language) == ([u.start_line - 1 for u in units], parses)


def test_counter_without_twin_still_counts(hf_tokens):
    assert hf_tokens.fast is None
    assert hf_tokens.count("def f():\n    return 1\n") > 0
    assert isinstance(hf_tokens, TokenCounter)
