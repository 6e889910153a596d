"""Does llama.cpp read a prompt as the same tokens as the Hugging Face tokenizer training used?

The smoke test hands llama.cpp the exact text it rendered for training, so a difference is a
tokenizer difference: a special token read as plain text, a BOS added or not, or a pre-tokenizer
that splits the same characters into other tokens. The first two change what the model sees and
fail the smoke test. The last is a known, unfixed difference for some of llama.cpp's
pre-tokenizers: its tokenizer test fails for DeepSeek's (ggml-org/llama.cpp#7036), which reads
`` = 0`` as ``' = ', '0'`` where the Hugging Face tokenizer reads ``' =', ' ', '0'``. Every
DeepSeek-Coder GGUF does this; no recipe can change it. Such re-splits (the same characters, no
special token on either side) are recorded with the pieces that differ and do not fail the test
for those pre-tokenizers; for every other pre-tokenizer any difference fails.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

# llama.cpp pre-tokenizer names (GGUF ``tokenizer.ggml.pre``) whose splits are known to differ
# from the Hugging Face tokenizer on the same text.
KNOWN_RESPLITS = {
    name: f"llama.cpp's {name} pre-tokenizer splits some text differently from the Hugging Face "
    "tokenizer (ggml-org/llama.cpp#7036: its tokenizer test fails for DeepSeek's), the same "
    "characters in other tokens"
    for name in ("deepseek-coder", "deepseek-llm")
}
SHOWN = 3  # differing spans kept in the record


def compare_prompt_ids(
    hf_ids: Sequence[int], cpp_ids: Sequence[int], tokenizer: Any, pre_tokenizer: str | None
) -> dict[str, Any] | None:
    """None when both read the same tokens; else what differs: ``spans`` (count), ``first``
    (up to three spans as the pieces each side read), ``same_text`` (every span holds the same
    characters on both sides), ``special_tokens`` (a special or added token is in a span), and
    ``tolerated`` with its ``reason`` when the difference is a known re-split."""
    hf_ids, cpp_ids = list(hf_ids), list(cpp_ids)
    if hf_ids == cpp_ids:
        return None
    special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    spans, same_text, touches_special = [], True, False
    matcher = difflib.SequenceMatcher(a=hf_ids, b=cpp_ids, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        ours, theirs = hf_ids[i1:i2], cpp_ids[j1:j2]
        # Token strings (byte-level or sentencepiece pieces), joined: equal when both spans
        # hold the same characters.
        joined = ["".join(tokenizer.convert_ids_to_tokens(t)) for t in (ours, theirs)]
        same_text = same_text and joined[0] == joined[1]
        touches_special = touches_special or bool(special & (set(ours) | set(theirs)))
        spans.append(
            {
                "hugging_face": [tokenizer.decode([t]) for t in ours],
                "llama_cpp": [tokenizer.decode([t]) for t in theirs],
            }
        )
    tolerated = same_text and not touches_special and pre_tokenizer in KNOWN_RESPLITS
    return {
        "spans": len(spans),
        "first": spans[:SHOWN],
        "same_text": same_text,
        "special_tokens": touches_special,
        "tolerated": tolerated,
        "reason": KNOWN_RESPLITS[pre_tokenizer] if tolerated and pre_tokenizer else None,
    }


def describe(difference: dict[str, Any]) -> str:
    """The first differing span in words, for a failure message."""
    first = difference["first"][0]
    what = (
        "a special token differs"
        if difference["special_tokens"]
        else "the same characters in other tokens"
        if difference["same_text"]
        else "different text"
    )
    return (
        f"{difference['spans']} span(s) differ, first: Hugging Face {first['hugging_face']!r}, "
        f"llama.cpp {first['llama_cpp']!r} ({what})"
    )
