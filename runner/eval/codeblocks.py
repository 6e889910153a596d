"""Fenced code blocks in a model's answer, with the language their fence names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from runner.languages import canonical

# A fence opens with three or more backticks or tildes and an optional info string; it closes with
# a fence of the same character at least as long. An unclosed fence runs to the end of the answer
# (a generation cut off by the token limit still has code worth checking).
_FENCE = re.compile(r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$", re.M)


def normalize_language(tag: str | None) -> str | None:
    """A fence tag as the language name the grammars use (``Python`` -> ``python``, ``rs`` ->
    ``rust``, ``golang`` -> ``go``: ``runner.languages.canonical``); ``None`` or ``""`` stays
    ``None``."""
    if not tag or not tag.strip():
        return None
    name = tag.strip().split()[0].lstrip("{.").rstrip("}")
    return canonical(name) if name else None


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its normalized language (``None`` when the fence names none) and code."""

    language: str | None
    code: str
    closed: bool = True


def code_blocks(text: str) -> list[CodeBlock]:
    """Every fenced block of ``text`` in order."""
    blocks: list[CodeBlock] = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if opening is None:
            return blocks
        fence = opening["fence"]
        closing_re = re.compile(
            rf"^[ \t]{{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M
        )
        body_start = opening.end() + 1
        closing = closing_re.search(text, body_start) if body_start <= len(text) else None
        if closing is None:
            blocks.append(CodeBlock(normalize_language(opening["info"]), text[body_start:], False))
            return blocks
        body = text[body_start : closing.start()]
        blocks.append(CodeBlock(normalize_language(opening["info"]), body.rstrip("\n") + "\n"))
        pos = closing.end()


def extract_code(text: str, language: str | None = None) -> str:
    """The code of an answer: its blocks in ``language`` (or untagged), else the whole answer.

    Used where one file of code is needed (the ``command`` check writes it to ``{file}``).
    """
    blocks = code_blocks(text)
    if language:
        wanted = normalize_language(language)
        blocks = [b for b in blocks if b.language in (wanted, None)]
    if not blocks:
        return text
    return "\n".join(b.code for b in blocks)
