"""Token counting shortcuts give the tokenizer's own answers on real files.

The data stage chunks by token counts, so its faster path (the tiktoken twin) must agree
exactly with the tokenizer; these tests compare them on real source files.
"""

from __future__ import annotations

import bisect
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


def line_by_line_chunks(text: str, limit: int, counter: TokenCounter, cut_lines=()) -> list[str]:
    """``chunk_text`` as it was written first (bisect line by line, every text's offsets): the
    reference its vectorised form must equal."""
    starts = counter.token_starts(text)
    if len(starts) <= limit:
        return [text]
    line_offsets = [0]
    position = text.find("\n")
    while position >= 0:
        line_offsets.append(position + 1)
        position = text.find("\n", position + 1)
    line_offsets.append(len(text))
    line_tokens = [bisect.bisect_left(starts, offset) for offset in line_offsets]
    preferred = sorted({c for c in cut_lines if 0 < c < len(line_offsets) - 1})
    pieces = []
    previous = 0
    for cut in [*preferred, len(line_offsets) - 1]:
        if line_tokens[cut] - line_tokens[previous] <= limit:
            pieces.append(
                (line_offsets[previous], line_offsets[cut], line_tokens[previous], line_tokens[cut])
            )
            previous = cut
            continue
        for line in range(previous, cut):
            first, last = line_tokens[line], line_tokens[line + 1]
            line_start, line_end = line_offsets[line], line_offsets[line + 1]
            if line_start == line_end:
                continue
            if last - first <= limit:
                pieces.append((line_start, line_end, first, last))
                continue
            for token in range(first, last, limit):
                piece_start = line_start if token == first else starts[token]
                piece_end = starts[token + limit] if token + limit < last else line_end
                pieces.append(
                    (
                        piece_start,
                        piece_end,
                        bisect.bisect_left(starts, piece_start),
                        bisect.bisect_left(starts, piece_end),
                    )
                )
        previous = cut
    merged = []
    for start, end, first, last in pieces:
        if merged and last - merged[-1][2] <= limit:
            merged[-1][1] = end
        else:
            merged.append([start, end, first])
    return [text[a:b] for a, b, _ in merged if a < b]


MULTIBYTE = "# é😀中\n" + "".join(
    f"def f{i}(x):\n    return 'ü' * {i}  # 字\n\n" for i in range(60)
)


@pytest.mark.parametrize("limit", [1, 2, 7, 64, 512, 2048])
def test_chunk_text_equals_the_line_by_line_reference(tokens, hf_tokens, corpus, limit):
    """The vectorised cut (offsets only for texts over the limit, all lines' token indexes at
    once) gives the first form's pieces, with the twin and with the tokenizer itself."""
    texts = [*corpus, MULTIBYTE, "😀" * 40 + "\n" + "x" * 3000, "\r\n".join(["a = 1"] * 300)]
    for text in texts:
        cuts = unit_starts(text, "python")[0]
        for counter in (tokens, hf_tokens):
            assert chunk_text(text, limit, counter, cuts) == line_by_line_chunks(
                text, limit, counter, cuts
            ), (limit, text[:80])


def test_chunk_text_at_the_limit(tokens, hf_tokens):
    """A text of exactly ``limit`` tokens is one piece; one token more and it is cut."""
    for text in (MULTIBYTE, real_files(1, seed=3)[0]):
        for counter in (tokens, hf_tokens):
            count = counter.count(text)
            assert counter.starts_over(text, count) is None
            assert chunk_text(text, count, counter) == [text]
            starts = counter.starts_over(text, count - 1)
            assert starts is not None and starts.tolist() == counter.token_starts(text)
            pieces = chunk_text(text, count - 1, counter)
            assert len(pieces) > 1 and "".join(pieces) == text
