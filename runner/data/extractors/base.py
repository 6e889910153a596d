"""What every extractor shares: its stage name, instruction filling and the token budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.data.example import Example, stable_id
from runner.data.outcome import Rejection
from runner.data.tokenizer import TokenCounter
from runner.recipe.fields import Operation

# Units of a repo source are chunked by tokens of the base tokenizer up to `max_unit_tokens`;
# other sources (docs) have no such key and use this.
DEFAULT_MAX_UNIT_TOKENS = 1024


class ExtractorOptions(Operation):
    """What every entry of a source's `extract:` list takes besides its own keys."""

    instruction: str
    """The user turn's instruction; `{language}`, `{name}`, `{path}` (and for docs `{title}`,
    `{heading_path}`) are filled in."""


class Extractor:
    """Turns one raw document into zero or more chat examples (or rejections with reasons).

    ``max_tokens`` is the source's ``max_unit_tokens``: longer code is chunked by tokens of
    the base tokenizer (or, where a task cannot be chunked, rejected with the numbers).
    """

    Options = ExtractorOptions

    def __init__(self, options: Any, source_options: Any, tokens: TokenCounter | None):
        self.options = options
        self.type = options.type
        self.stage = f"extract:{self.type}"
        self.instruction = options.instruction
        self.max_tokens = getattr(source_options, "max_unit_tokens", DEFAULT_MAX_UNIT_TOKENS)
        self.tokens = tokens

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        raise NotImplementedError

    def fill(self, **values: Any) -> str:
        """The instruction with ``{language}``, ``{name}``, ``{path}``, ``{title}``... filled in;
        other braces (code in an instruction) are left alone."""
        text = self.instruction
        for key, value in values.items():
            text = text.replace("{" + key + "}", str(value))
        return text

    def make(self, doc: Example, user: str, assistant: str, *key: Any, **meta: Any) -> Example:
        metadata = {**doc.metadata, "task": self.type, **meta}
        return Example(
            id=stable_id(doc.id, self.type, *key),
            source=doc.source,
            messages=[
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ],
            metadata=metadata,
        )

    def fits(self, text: str) -> bool:
        if self.tokens is None:
            raise RuntimeError("extractors need the base tokenizer to respect max_unit_tokens")
        return self.tokens.fits(text, self.max_tokens)

    def reject(
        self,
        doc: Example,
        reason: str,
        detail: str,
        line: int | None = None,
        keep_example: Example | None = None,
    ) -> Rejection:
        return Rejection(
            self.stage,
            reason,
            detail,
            file=doc.metadata.get("source_file"),
            line=line,
            example=keep_example,
        )


def fenced(code: str, language: str | None) -> str:
    """Code in a Markdown fence whose info string names the language."""
    info = language or ""
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}{info}\n{code.rstrip()}\n{ticks}"
