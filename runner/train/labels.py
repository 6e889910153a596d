"""Checks on the tokenizer and on the tokenized data, before any training step runs.

The model that never stops is the most reported failure after template mismatches: the
end-of-turn token was never trained, or it was masked because pad == eos
(axolotl-ai-cloud/axolotl#1608, PR #3756; unslothai/unsloth#384). These checks read what
Axolotl itself tokenized (inside its training process: ``runner.train.plugin``), so they test
the real labels, not a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from runner.errors import StageError

IGNORE = -100


def end_token_ids(tokenizer: Any, end_tokens: Sequence[str]) -> set[int]:
    """Ids of the strings that close a turn; each must be one token of this tokenizer."""
    ids = set()
    for token in end_tokens:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            raise StageError(
                "train",
                f"the end-of-turn string {token!r} of the chat template is {len(encoded)} tokens "
                "for this tokenizer, so it cannot be trained as one stop token; add it as a "
                "special token (axolotl: {tokens: [...]}) or pick the template of this model family",
            )
        ids.add(encoded[0])
    return ids


# Token texts llama.cpp marks as end-of-generation by name, whatever the GGUF's eos id says
# (llama_vocab::impl::load, src/llama-vocab.cpp of the llama.cpp tree we install; a test keeps
# this list equal to that file). Ollama and llama.cpp stop only on these, the eos and the eot ids.
LLAMA_CPP_EOG_TEXTS = frozenset(
    {
        "<|eot_id|>",
        "<|im_end|>",
        "<|end|>",
        "<|return|>",
        "<|call|>",
        "<|flush|>",
        "<|calls|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "</s>",
        "<|eom_id|>",
        "<EOT>",
        "_<EOT>",
        "[EOT]",
        "[EOS]",
        "<|end_of_text|>",
        "<end_of_utterance>",
        "<eos>",
        "<turn|>",
        "<|tool_response>",
        "<\uff5cend\u2581of\u2581sentence\uff5c>",
        "[e~[",
    }
)
_SPECIAL_SHAPE = re.compile(r"^(<[^\s<>]+>|\[[^\s\[\]]+\])$")


def eos_override(end_of_turn: str | None, eos_token: str | None) -> str | None:
    """The end-of-turn token to make the trained tokenizer's eos, or None to keep its eos.

    DeepSeek-Coder's template ends answers with ``<|EOT|>`` while the base tokenizer's eos is
    ``<｜end▁of▁sentence｜>``; llama.cpp does not know ``<|EOT|>`` by name, so the GGUF would never
    stop where training taught the model to stop. Axolotl users set
    ``special_tokens: {eos_token: <|EOT|>}``; this does the same when the end of turn is one
    special-looking token, differs from the eos (``None``: not known yet, as at plan time), and
    is not one llama.cpp ends generation on by itself.
    """
    if not end_of_turn or not _SPECIAL_SHAPE.match(end_of_turn):
        return None
    if end_of_turn == eos_token or end_of_turn in LLAMA_CPP_EOG_TEXTS:
        return None
    return end_of_turn


def eos_override_note(cfg: dict[str, Any]) -> str | None:
    """The plan's note when the Axolotl config makes the end-of-turn token the eos."""
    eos = (cfg.get("special_tokens") or {}).get("eos_token")
    if eos is None:
        return None
    return (
        f"special_tokens.eos_token: {eos} (the template's end of turn): llama.cpp does not stop "
        f"on {eos} by name, so the trained tokenizer, and the GGUF made from it, ends "
        "generation with it"
    )


def pad_override(
    tokenizer: Any, end_tokens: Sequence[str], template_source: str = ""
) -> tuple[str | None, str | None]:
    """A pad token to use instead of the tokenizer's when that one is missing or ends turns.

    The replacement is the unknown token or another special token the chat template never
    writes, so padding can never hide a token the model must learn.
    Returns ``(token, note)``; ``(None, None)`` when the tokenizer's pad token is fine.
    """
    pad = tokenizer.pad_token
    if pad is not None and pad not in end_tokens:
        return None, None
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    candidates = [tokenizer.unk_token, *(t.content for _, t in sorted(added.items()) if t.special)]
    for token in candidates:
        if token and token not in end_tokens and token not in template_source:
            why = "has no pad token" if pad is None else f"pads with the end-of-turn token {pad!r}"
            return token, (
                f"the tokenizer {why}; padding with {token!r} instead so the end of each turn "
                "is never masked as padding (axolotl#1608)"
            )
    raise StageError(
        "train",
        f"the tokenizer's pad token {pad!r} is an end-of-turn token and no other special token "
        "can pad; set axolotl: {special_tokens: {pad_token: ...}} in the recipe",
    )


@dataclass
class LabelReport:
    rows: int = 0
    trained_turns: int = 0
    bad_rows: list[dict[str, Any]] = field(default_factory=list)

    def problem(self) -> str | None:
        if self.rows == 0:
            return "Axolotl's prepared dataset has no rows (every example was dropped; see logs/train.log)"
        if not self.bad_rows:
            return None
        first = self.bad_rows[0]
        return (
            f"{len(self.bad_rows)} of {self.rows} tokenized examples have a trained turn that does "
            f"not end with a trained end-of-turn token (first: row {first['row']}, {first['why']}); "
            "the model would not learn to stop. Check prompt.template against the base model's "
            "family and prompt.train_on (axolotl#1608)"
        )


def check_labels(
    rows: Iterable[tuple[Sequence[int], Sequence[int]]], end_ids: set[int]
) -> LabelReport:
    """Every maximal run of trained labels must end on an end-of-turn token whose label is kept."""
    report = LabelReport()
    for index, (input_ids, labels) in enumerate(rows):
        report.rows += 1
        spans = _trained_spans(labels)
        if not spans:
            report.bad_rows.append({"row": index, "why": "no token carries loss"})
            continue
        for _, end in spans:
            if input_ids[end] not in end_ids:
                report.bad_rows.append(
                    {"row": index, "why": f"a trained turn ends with token id {input_ids[end]}"}
                )
                break
        else:
            report.trained_turns += len(spans)
    return report


def _trained_spans(labels: Sequence[int]) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, label in enumerate(labels):
        if label != IGNORE and start is None:
            start = i
        elif label == IGNORE and start is not None:
            spans.append((start, i - 1))
            start = None
    if start is not None:
        spans.append((start, len(labels) - 1))
    return spans


def prepared_count(prepared_dir: Path) -> int:
    """How many finished datasets Axolotl saved there (``save_to_disk`` writes its
    ``dataset_info.json`` last, so a cut-off save does not count)."""
    if not prepared_dir.is_dir():
        return 0
    return len({p.parent for p in prepared_dir.rglob("dataset_info.json")})


# Axolotl finds an end-of-turn token up to 3 tokens after a trained answer ("template padding",
# chat_template.py) and trains that token alone, so the template text between the answer and it
# stays masked: DeepSeek-Coder's '\n<|EOT|>' trains '<|EOT|>' but never the '\n' before it, and
# the model is not taught the way its answers end.
END_GAP = 3


def fill_end_gaps(
    labels: Sequence[int], input_ids: Sequence[int], end_ids: set[int]
) -> tuple[list[int], int]:
    """``labels`` with the masked template tokens between a trained answer and its trained end
    token trained as well, and how many were filled. Only gaps of at most ``END_GAP`` tokens, both
    sides trained, the right one an end token: a masked prompt is never unmasked."""
    out = list(labels)
    filled = 0
    spans = _trained_spans(labels)
    for (_, left_end), (right_start, right_end) in pairwise(spans):
        gap = right_start - left_end - 1
        if (
            0 < gap <= END_GAP
            and right_start == right_end
            and input_ids[right_start] in end_ids
            and input_ids[left_end] not in end_ids
        ):
            for i in range(left_end + 1, right_start):
                out[i] = input_ids[i]
            filled += gap
    return out, filled
