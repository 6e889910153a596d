"""Code extractors: explain, complete, document, implement from docstring, whole files.

Units are cut at function/class boundaries by tree-sitter (``runner.data.units``), in any
language tree-sitter-language-pack has a grammar for. Each example records whether its code
parsed (``meta.parses``) so the syntax filter need not parse again. Files without a grammar
still count: ``file_completion`` takes any text file, ``complete_code`` falls back to blocks cut
at blank lines, and an extractor that cannot use a file says why in a rejected row naming it.

An answer must be worth training on: documentation of a few words ("Caller owns returned
memory." for a 40-line function), a licence header or a TODO does not explain or specify code;
such units are dropped with the reason (``min_answer_words``, ``min_doc_words``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from runner.data.example import Example
from runner.data.extractors.base import Extractor, ExtractorOptions, fenced
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS
from runner.data.tokenizer import chunk_text
from runner.data.units import Unit, parse_units, text_blocks, unit_starts, walk_units
from runner.grammars import has_parser

LICENCE = re.compile(
    r"(?i)\b(?:copyright|licen[cs]ed? under|spdx-license-identifier|all rights reserved)\b"
)
TODO = re.compile(r"(?i)^\W*(?:todo|fixme|xxx|hack)\b")
WORD = re.compile(r"[^\W_]+")


def doc_problem(doc: str, minimum: int) -> tuple[str, str] | None:
    """``(reason, detail)`` when documentation does not describe code, else None."""
    if LICENCE.search(doc):
        return "not a description", "a licence or copyright notice"
    if TODO.match(doc):
        return "not a description", "a TODO note"
    count = len(WORD.findall(doc))
    if count < minimum:
        return "documentation too short", f"{count} words < {minimum}"
    return None


class UnitExtractor(Extractor):
    """Base of the extractors that make one example per documented unit."""

    needs_doc = True
    min_words = 0  # the least documentation, in words, an example may stand on

    def units(self, doc: Example) -> Iterator[Unit | Rejection]:
        """The file's units, or one rejection saying why the file gives none."""
        language = doc.metadata.get("language")
        if not has_parser(language):
            yield self.reject(
                doc, "no grammar", f"{language or 'unknown language'}: no tree-sitter grammar"
            )
            return
        units = walk_units(parse_units(doc.text, language)[0])
        if not units:
            yield self.reject(
                doc, "no unit", f"no function, method or class in this {language} file"
            )
            return
        yield from units

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        for unit in self.units(doc):
            if isinstance(unit, Rejection):
                yield unit
                continue
            if self.needs_doc and not unit.doc:
                yield self.reject(
                    doc,
                    "no documentation",
                    f"{unit.kind} '{unit.name}' has no docstring or doc comment",
                    unit.start_line,
                )
                continue
            problem = doc_problem(unit.doc or "", self.min_words) if self.needs_doc else None
            if problem is not None:
                reason, detail = problem
                yield self.reject(
                    doc, reason, f"{unit.kind} '{unit.name}': {detail}", unit.start_line
                )
                continue
            if not self.fits(unit.documented_code):
                count = self.tokens.count(unit.documented_code) if self.tokens else 0
                yield self.reject(
                    doc,
                    "unit over max_unit_tokens",
                    f"{unit.kind} '{unit.name}' is {count} tokens > "
                    f"{self.max_tokens}; a {self.type} task cannot be chunked",
                    unit.start_line,
                )
                continue
            yield self.unit_example(doc, unit)

    def unit_example(self, doc: Example, unit: Unit) -> Example:
        raise NotImplementedError

    def unit_meta(self, unit: Unit) -> dict:
        return {
            "unit": unit.name,
            "kind": unit.kind,
            "line": unit.start_line,
            "parses": not unit.has_error,
        }

    def filled(self, doc: Example, unit: Unit) -> str:
        return self.fill(language=unit.language, name=unit.name, path=doc.metadata.get("path", ""))


@EXTRACTORS.register
class ExplainCode(UnitExtractor):
    """User: the unit without its documentation. Assistant: the documentation, as prose."""

    class Options(ExtractorOptions):
        """User shows a function/class; assistant answers with its docstring/leading comment
        as the explanation. Units without documentation are dropped with a reason."""

        type: Literal["explain_code"]
        instruction: str = "Explain what the following {language} code from `{path}` does."
        min_answer_words: int = Field(8, ge=0)
        """Drop units whose documentation (the answer) has fewer words than this."""

    def __init__(self, options, source_options, tokens):
        super().__init__(options, source_options, tokens)
        self.min_words = options.min_answer_words

    def unit_example(self, doc: Example, unit: Unit) -> Example:
        user = f"{self.filled(doc, unit)}\n\n{fenced(unit.code_without_doc, unit.language)}"
        return self.make(
            doc,
            user,
            unit.doc or "",
            unit.name,
            unit.start_line,
            response_format="text",
            **self.unit_meta(unit),
        )


@EXTRACTORS.register
class DocumentCode(UnitExtractor):
    """User: the undocumented unit. Assistant: the documentation exactly as written in the
    source (docstring literal or doc comment), so the model learns the project's doc style."""

    class Options(ExtractorOptions):
        """User gives undocumented code; assistant answers with the documentation the unit
        really has."""

        type: Literal["document_code"]
        instruction: str = "Write documentation for the following {language} code from `{path}`."
        min_answer_words: int = Field(8, ge=0)
        """Drop units whose documentation (the answer) has fewer words than this."""

    def __init__(self, options, source_options, tokens):
        super().__init__(options, source_options, tokens)
        self.min_words = options.min_answer_words

    def unit_example(self, doc: Example, unit: Unit) -> Example:
        user = f"{self.filled(doc, unit)}\n\n{fenced(unit.code_without_doc, unit.language)}"
        return self.make(
            doc,
            user,
            fenced(textwrap.dedent(unit.doc_raw or ""), unit.language),
            unit.name,
            unit.start_line,
            **self.unit_meta(unit),
        )


@EXTRACTORS.register
class ImplementFromDocstring(UnitExtractor):
    """User: the signature and documentation. Assistant: the whole unit."""

    class Options(ExtractorOptions):
        """User gives a signature and docstring; assistant answers with the implementation."""

        type: Literal["implement_from_docstring"]
        instruction: str = "Implement `{name}` in {language} as documented:"
        min_doc_words: int = Field(8, ge=0)
        """Drop units whose documentation (the specification) has fewer words than this."""

    def __init__(self, options, source_options, tokens):
        super().__init__(options, source_options, tokens)
        self.min_words = options.min_doc_words

    def unit_example(self, doc: Example, unit: Unit) -> Example:
        if unit.doc_inside:  # a docstring: it goes under the signature
            indent = " " * 4
            stub = (
                f"{unit.signature}\n{textwrap.indent(textwrap.dedent(unit.doc_raw or ''), indent)}"
            )
        else:
            stub = f"{unit.doc_raw}\n{unit.signature}"
        user = f"{self.filled(doc, unit)}\n\n{fenced(stub, unit.language)}"
        return self.make(
            doc,
            user,
            fenced(unit.documented_code, unit.language),
            unit.name,
            unit.start_line,
            **self.unit_meta(unit),
        )


@EXTRACTORS.register
class CompleteCode(UnitExtractor):
    """User: the first ``split_at`` of a unit's lines. Assistant: the rest. Units longer than
    ``max_unit_tokens`` are chunked by tokens first, one example per chunk."""

    needs_doc = False

    class Options(ExtractorOptions):
        """User gives the first part of a unit; assistant completes it."""

        type: Literal["complete_code"]
        instruction: str = "Complete the following {language} code from `{path}`."
        split_at: float = Field(0.5, ge=0, le=1)
        """Where to cut the unit: the prompt gets this fraction of its lines."""

    def __init__(self, options, source_options, tokens):
        super().__init__(options, source_options, tokens)
        self.split_at = options.split_at

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        language = doc.metadata.get("language")
        units, parses = parse_units(doc.text, language) if has_parser(language) else ([], None)
        units = walk_units(units)
        # A class is completed method by method.
        pieces = [(u, u.start_line, u.documented_code) for u in units if not u.children]
        if not units:  # no grammar, or none of its units here: blocks between blank lines
            pieces = [(None, line, block) for line, block in text_blocks(doc.text)]
        if not pieces:
            yield self.reject(doc, "nothing to complete", "no unit, and no block of 2+ lines")
            return
        assert self.tokens is not None
        path = doc.metadata.get("path", "")
        for unit, line, code in pieces:
            name = unit.name if unit else f"block at line {line}"
            kind = unit.kind if unit else "block"
            chunks = chunk_text(code, self.max_tokens, self.tokens)
            for number, chunk in enumerate(chunks, start=1):
                lines = chunk.rstrip("\n").split("\n")
                if len(lines) < 2:
                    detail = f"{kind} '{name}' has one line"
                    yield self.reject(doc, "too short to split", detail, line)
                    continue
                cut = min(len(lines) - 1, max(1, round(len(lines) * self.split_at)))
                head, tail = "\n".join(lines[:cut]), "\n".join(lines[cut:])
                filled = self.fill(language=language or "text", name=name, path=path)
                user = f"{filled}\n\n{fenced(head, language)}"
                meta = self.unit_meta(unit) if unit else {"unit": name, "kind": kind, "line": line}
                if unit is None and parses is not None:
                    meta["parses"] = parses  # half a block is not expected to parse alone
                if len(chunks) > 1:
                    meta["chunk"] = [number, len(chunks)]
                yield self.make(doc, user, fenced(tail, language), name, line, number, **meta)


@EXTRACTORS.register
class FileCompletion(Extractor):
    """User: "write the file <path>". Assistant: the file. Files longer than
    ``max_unit_tokens`` are cut at top-level unit boundaries into numbered parts."""

    class Options(ExtractorOptions):
        """The whole file (chunked by tokens) as the answer to a request naming its path."""

        type: Literal["file_completion"]
        instruction: str = "Write the {language} file `{path}`."

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        language = doc.metadata.get("language")
        if not doc.text.strip():
            yield self.reject(doc, "empty file", "the file has no text")
            return
        parses = None
        cut_lines: list[int] = []
        if has_parser(language):
            cut_lines, parses = unit_starts(doc.text, language)
        assert self.tokens is not None
        chunks = chunk_text(doc.text, self.max_tokens, self.tokens, cut_lines)
        path = doc.metadata.get("path", "")
        for number, chunk in enumerate(chunks, start=1):
            user = self.fill(language=language or "text", path=path, name=path)
            meta = {} if parses is None else {"parses": parses}
            if len(chunks) > 1:
                user += f" (part {number} of {len(chunks)})"
                meta["chunk"] = [number, len(chunks)]
            yield self.make(doc, user, fenced(chunk, language), number, **meta)
