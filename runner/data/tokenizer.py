"""Token counts with the base model's own tokenizer, and chunking of long code by tokens.

Long files and units are cut into pieces that fit, at line boundaries (preferring the starts of
top-level units), never truncated: axolotl-ai-cloud/axolotl PR #3401 is what silent truncation
of long code files looks like from the user's side.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy loads where text is chunked, not wherever a recipe is validated
    import numpy as np


class TokenCounter:
    """Counts tokens of text with a Hugging Face tokenizer (its fast Rust backend when present)."""

    def __init__(self, tokenizer: Any, fast: Any = None):
        self.tokenizer = tokenizer
        if type(tokenizer).__module__.startswith("tokenizers"):
            self._backend = tokenizer  # a bare `tokenizers.Tokenizer`
        else:
            self._backend = getattr(tokenizer, "backend_tokenizer", None)
        self.fast = fast  # a `FastBPE` twin answering for most texts, or None

    @classmethod
    def for_base(cls, base: str, revision: str | None = None) -> TokenCounter:
        """The counter of the recipe's ``model.base``.

        Reads the folder's ``tokenizer.json`` with the ``tokenizers`` library when there is one
        (a second, where importing transformers takes ten); otherwise goes through
        ``runner.models.load_tokenizer``. A byte-level BPE tokenizer gets a tiktoken twin
        (``runner.data.tiktoken_twin``) that counts the texts it covers several times faster.
        """
        from runner.models import load_tokenizer, resolve_base

        folder = resolve_base(base, revision)
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            from runner.data.tiktoken_twin import twin_of

            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            return cls(tokenizer, twin_of(folder / "tokenizer.json", tokenizer))
        return cls(load_tokenizer(base, revision))

    def count(self, text: str) -> int:
        if self.fast is not None and self.fast.covers(text):
            return self.fast.count(text)
        if self._backend is not None:
            return len(self._backend.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_many(self, texts: list[str]) -> list[int]:
        if self.fast is not None:
            return [self.count(t) for t in texts]
        if self._backend is not None:
            return [len(e.ids) for e in self._backend.encode_batch(texts, add_special_tokens=False)]
        return [self.count(t) for t in texts]

    def token_starts(self, text: str) -> list[int]:
        """Character offset where each token starts."""
        if self.fast is not None and self.fast.covers(text):
            return self.fast.token_starts(text)
        if self._backend is not None:
            return [
                start for start, _ in self._backend.encode(text, add_special_tokens=False).offsets
            ]
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [start for start, _ in encoded["offset_mapping"]]

    def fits(self, text: str, limit: int) -> bool:
        return self.count(text) <= limit

    def starts_over(self, text: str, limit: int) -> np.ndarray | None:
        """``token_starts`` as an array when ``text`` has more than ``limit`` tokens, else None
        (the text is encoded once either way)."""
        import numpy as np

        if self.fast is not None and self.fast.covers(text):
            return self.fast.starts_over(text, limit)
        starts = self.token_starts(text)
        return np.asarray(starts, dtype=np.int64) if len(starts) > limit else None


def chunk_text(
    text: str, limit: int, counter: TokenCounter, cut_lines: Iterable[int] = ()
) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` tokens at line boundaries.

    Lines in ``cut_lines`` (0-based; e.g. where top-level units start) are preferred cut points.
    A single line longer than the limit is cut between tokens. Concatenating the pieces gives
    back ``text`` exactly.
    """
    import numpy as np

    starts = counter.starts_over(text, limit)  # tokenized once: counts of spans come from here
    if starts is None:
        return [text]
    # Where each line starts (and the text's end), and the index of the first token starting
    # at or after it: the token count of a run of whole lines is a subtraction. Found for all
    # lines at once (numpy), not line by line: on the bench corpus that loop cost a third as
    # much as tokenizing.
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    line_starts = np.concatenate(([0], np.flatnonzero(points == 0x0A) + 1, [len(text)]))
    line_offsets: list[int] = line_starts.tolist()
    line_tokens: list[int] = np.searchsorted(starts, line_starts, side="left").tolist()

    def first_token_at(offset: int) -> int:
        return int(np.searchsorted(starts, offset, side="left"))

    preferred = sorted({c for c in cut_lines if 0 < c < len(line_offsets) - 1})
    # Pieces as (start char, end char, first token, end token).
    pieces: list[tuple[int, int, int, int]] = []
    previous = 0
    for cut in [*preferred, len(line_offsets) - 1]:  # segments between preferred cuts
        if line_tokens[cut] - line_tokens[previous] <= limit:
            pieces.append(
                (line_offsets[previous], line_offsets[cut], line_tokens[previous], line_tokens[cut])
            )
            previous = cut
            continue
        # Too long: cut this segment at line boundaries, and an over-long line by tokens.
        for line in range(previous, cut):
            first, last = line_tokens[line], line_tokens[line + 1]
            line_start, line_end = line_offsets[line], line_offsets[line + 1]
            if line_start == line_end:
                continue
            if last - first <= limit:
                pieces.append((line_start, line_end, first, last))
                continue
            for token in range(first, last, limit):
                piece_start = line_start if token == first else int(starts[token])
                piece_end = int(starts[token + limit]) if token + limit < last else line_end
                # Several tokens may start at one character: count by characters.
                pieces.append(
                    (piece_start, piece_end, first_token_at(piece_start), first_token_at(piece_end))
                )
        previous = cut
    merged: list[list[int]] = []
    for start, end, first, last in pieces:  # greedily join neighbours while they fit
        if merged and last - merged[-1][2] <= limit:
            merged[-1][1] = end
        else:
            merged.append([start, end, first])
    return [text[a:b] for a, b, _ in merged if a < b]
