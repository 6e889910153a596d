"""`syntax`: drop examples whose code does not parse (tree-sitter), e.g. broken Zig."""

from __future__ import annotations

import re
from typing import Literal

from runner.data.example import Example
from runner.data.filters.base import Filter
from runner.data.outcome import Verdict, drop, note
from runner.data.registries import FILTERS
from runner.grammars import has_parser, parse_error
from runner.languages import canonical
from runner.recipe.fields import Operation

FENCE = re.compile(r"^(`{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(info string, code)`` of each fenced code block in Markdown text."""
    return [(m.group(2).lower(), m.group(3)) for m in FENCE.finditer(text)]


@FILTERS.register
class SyntaxFilter(Filter):
    """Parses the example's code with tree-sitter and drops it on a parse error.

    ``field: response``: the response's fenced blocks, or the whole response when it has none
    (instruction datasets often answer with bare code). ``code_blocks``: fenced blocks of every
    turn. ``text``: the whole response. Examples cut from parsed files carry ``meta.parses``
    (their unit's part of the tree) and are judged by it, since a half-unit in a completion
    task is not expected to parse alone. Examples in a language without a grammar, or with no
    code to check, are kept and counted under "not checked".
    """

    class Options(Operation):
        """Drop examples whose code does not parse (tree-sitter)."""

        type: Literal["syntax"]
        language: str = "auto"
        """Language whose code must parse; `auto` uses the example's language."""
        field: Literal["response", "code_blocks", "text"] = "response"
        """Where the code is: the response's fenced blocks or, failing those, the whole
        response."""

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.language = options.language
        self.field = options.field

    def language_of(self, example: Example, info: str = "") -> str | None:
        if self.language != "auto":
            return canonical(self.language)
        if info:
            return canonical(info)
        language = example.metadata.get("language")
        return canonical(language) if isinstance(language, str) else None

    def filter(self, example: Example) -> Verdict | None:
        if "parses" in example.metadata and self.language in (
            "auto",
            example.metadata.get("language"),
        ):
            if example.metadata["parses"]:
                return None
            language = example.metadata.get("language")
            return drop("syntax error", f"{language}: the source unit does not parse")
        targets = self.targets(example)
        if not targets:
            return note("not checked", "no code in a language with a grammar")
        for language, code in targets:
            error = parse_error(code, language)
            if error:
                return drop("syntax error", f"{language}: {error}")
        return None

    def targets(self, example: Example) -> list[tuple[str, str]]:
        if self.field == "code_blocks":
            blocks = code_blocks(example.content("all"))
        else:
            response = example.content("response")
            blocks = code_blocks(response) if self.field == "response" else []
            if not blocks and example.metadata.get("response_format") != "text":
                blocks = [("", response)]
        found = []
        for info, code in blocks:
            language = self.language_of(example, info)
            if has_parser(language):
                found.append((language, code))
        return found
