"""`fill_in_middle`: infill examples in the base tokenizer's own FIM format.

A file is cut into pieces that fit the token budget (at unit boundaries, as ``file_completion``
cuts it); a seeded draw turns a share (``rate``) of the pieces into one example each: a span of
the piece is the hole (the middle), the rest of the piece its prefix and suffix. The span is a
syntax node of the file's tree (a statement, an expression, a block: ``span: syntax``) or a run
of whole lines (``span: lines``, and for files without a grammar).

The example's user turn is the infill prompt (prefix, suffix and the family's three markers,
``runner.prompt.fim``), its assistant turn the middle; ``meta.format: fim`` sends it to the
``<split>.fim.jsonl`` files, which train as Axolotl ``completion`` rows beside the chat examples.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from runner.data.example import Example, stable_id
from runner.data.extractors.base import Extractor, ExtractorOptions
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS
from runner.data.tokenizer import chunk_text
from runner.data.units import unit_starts
from runner.errors import UserError
from runner.grammars import has_parser, parser_for

# Room left in a training row for BOS, the three markers and the end-of-sequence token.
ROW_OVERHEAD = 8
# Spans drawn before a piece is given up ("no span").
DRAWS = 20


@EXTRACTORS.register
class FillInMiddle(Extractor):
    """User: the infill prompt (prefix and suffix around a hole, in the tokenizer's FIM
    tokens). Assistant: the middle."""

    class Options(ExtractorOptions):
        """Fill-in-the-middle examples in the base tokenizer's own FIM tokens (a base without
        them is refused)."""

        type: Literal["fill_in_middle"]
        instruction: str = ""
        """Not used: the prompt is the infill format of the base model's family."""
        rate: float = Field(0.5, gt=0, le=1)
        """Share of each file's pieces (cut to fit max_unit_tokens and train.seq_len) turned
        into one infill example, by a seeded draw."""
        mode: Literal["psm", "spm"] = "psm"
        """Order of the prompt: prefix-suffix-middle (what Ollama's code models send) or
        suffix-prefix-middle."""
        span: Literal["syntax", "lines"] = "syntax"
        """The hole: a syntax node of the file (a statement, an expression, a block), or a run
        of whole lines; files without a grammar always use lines."""
        max_span_lines: int = Field(8, ge=1)
        """The longest hole, in lines."""
        min_span_chars: int = Field(4, ge=1)
        """The shortest hole, in characters other than whitespace."""
        seed: int = Field(0, ge=0)
        """Seed of the draws (which pieces, which spans)."""

    def __init__(self, options: Any, source_options: Any, tokens: Any):
        super().__init__(options, source_options, tokens)
        from runner.prompt.fim import fim_format, no_fim_reason, tokenizer_vocabulary

        if tokens is None:
            raise UserError("fill_in_middle needs the base tokenizer (model.base)")
        vocabulary = tokenizer_vocabulary(tokens.tokenizer)
        fim = fim_format(vocabulary, options.mode)
        if fim is None:
            raise UserError(no_fim_reason(vocabulary, "the base tokenizer"))
        self.fim = fim
        self.budget = self.max_tokens

    def attach(self, plan: Any, shared: dict[str, Any]) -> None:
        seq_len = getattr(plan, "seq_len", None)
        if seq_len:
            # Axolotl's completion type cuts a longer row into pieces, and a piece without its
            # end-of-sequence token would teach the model never to stop.
            self.budget = max(16, min(self.max_tokens, seq_len - ROW_OVERHEAD))

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        text = doc.text
        language = doc.metadata.get("language")
        if not text.strip():
            yield self.reject(doc, "empty file", "the file has no text")
            return
        markers = [m.strip() for m in (self.fim.prefix, self.fim.suffix, self.fim.middle)]
        if any(m in text for m in markers):
            yield self.reject(
                doc, "holds FIM tokens", f"the file itself contains {self.fim.family}'s markers"
            )
            return
        assert self.tokens is not None
        grammar = has_parser(language)
        cut_lines = unit_starts(text, language)[0] if grammar else []
        pieces = chunk_text(text, self.budget, self.tokens, cut_lines)
        nodes = _node_spans(text, language) if grammar and self.options.span == "syntax" else None
        start = 0
        for number, piece in enumerate(pieces, start=1):
            end = start + len(piece)
            rng = random.Random(stable_id(doc.id, self.type, number, self.options.seed))
            if rng.random() < self.options.rate:
                yield from self.piece_example(
                    doc, text, start, end, number, len(pieces), rng, nodes
                )
            start = end

    def piece_example(
        self,
        doc: Example,
        text: str,
        start: int,
        end: int,
        number: int,
        count: int,
        rng: random.Random,
        nodes: list[tuple[int, int, str]] | None,
    ) -> Iterator[Example | Rejection]:
        span = self.syntax_span(text, start, end, rng, nodes) if nodes is not None else None
        kind = span[2] if span else "lines"
        if span is None:
            span = self.line_span(text, start, end, rng)
        first_line = text.count("\n", 0, start) + 1
        if span is None:
            yield self.reject(
                doc,
                "no span",
                f"no hole of at most {self.options.max_span_lines} lines with "
                f"{self.options.min_span_chars}+ characters in piece {number} of {count}",
                first_line,
            )
            return
        hole_start, hole_end = span[0], span[1]
        before, middle, after = (
            text[start:hole_start],
            text[hole_start:hole_end],
            text[hole_end:end],
        )
        line = text.count("\n", 0, hole_start) + 1
        meta: dict[str, Any] = {
            "format": "fim",
            "fim_mode": self.fim.mode,
            "fim_family": self.fim.family,
            "span": kind,
            "line": line,
            "response_format": "text",  # a middle is not expected to parse alone
            "system_prompt": "none",  # completion text: no chat turn, no system prompt
        }
        if count > 1:
            meta["chunk"] = [number, count]
        yield self.make(doc, self.fim.prompt(before, after), middle, number, hole_start, **meta)

    def syntax_span(
        self,
        text: str,
        start: int,
        end: int,
        rng: random.Random,
        nodes: list[tuple[int, int, str]],
    ) -> tuple[int, int, str] | None:
        """A named node inside the piece, short enough and not blank."""
        inside = [
            n for n in nodes if start <= n[0] and n[1] <= end and self.fits_span(text[n[0] : n[1]])
        ]
        return rng.choice(inside) if inside else None

    def line_span(
        self, text: str, start: int, end: int, rng: random.Random
    ) -> tuple[int, int, str] | None:
        """A run of whole lines inside the piece."""
        offsets = [start]
        position = text.find("\n", start, end)
        while position >= 0:
            offsets.append(position + 1)
            position = text.find("\n", position + 1, end)
        if offsets[-1] != end:
            offsets.append(end)
        lines = len(offsets) - 1
        if lines < 1:
            return None
        for _ in range(DRAWS):
            first = rng.randrange(lines)
            length = rng.randint(1, min(self.options.max_span_lines, lines - first))
            hole = (offsets[first], offsets[first + length], "lines")
            if self.fits_span(text[hole[0] : hole[1]]):
                return hole
        return None

    def fits_span(self, middle: str) -> bool:
        chars = len("".join(middle.split()))
        return (
            chars >= self.options.min_span_chars
            and middle.count("\n", 0, len(middle.rstrip("\n"))) < self.options.max_span_lines
        )


def _node_spans(text: str, language: str) -> list[tuple[int, int, str]]:
    """``(start char, end char, node type)`` of every named node below the root, in document
    order (tree-sitter counts bytes; examples are cut by characters)."""
    import bisect

    data = text.encode("utf-8")
    tree = parser_for(language).parse(data)
    if len(data) == len(text):
        to_char = int
    else:
        starts = []  # the byte offset where each character starts
        offset = 0
        for ch in text:
            starts.append(offset)
            offset += len(ch.encode("utf-8"))

        def to_char(byte: int) -> int:
            return bisect.bisect_left(starts, byte)

    spans = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.named_children))
        if node == tree.root_node or node.has_error or node.is_missing:
            continue
        if node.start_byte < node.end_byte:
            spans.append((to_char(node.start_byte), to_char(node.end_byte), node.type))
    return spans
