"""`length`: bounds on characters and on tokens of the base tokenizer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.data.example import Example
from runner.data.filters.base import Filter, text_of
from runner.data.outcome import Verdict, drop
from runner.data.registries import FILTERS
from runner.recipe.fields import Operation


@FILTERS.register
class LengthFilter(Filter):
    """Drops examples whose ``field`` text is outside [min, max] characters or tokens."""

    class Options(Operation):
        """Length in characters and/or tokens of the base tokenizer."""

        type: Literal["length"]
        min_chars: int | None = Field(None, ge=0)
        max_chars: int | None = Field(None, ge=1)
        min_tokens: int | None = Field(None, ge=0)
        max_tokens: int | None = Field(None, ge=1)
        field: Literal["all", "response", "prompt"] = "all"
        """What is measured."""

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.field = options.field
        self.bounds = {
            k: getattr(options, k) for k in ("min_chars", "max_chars", "min_tokens", "max_tokens")
        }
        if (
            self.bounds["min_tokens"] is not None or self.bounds["max_tokens"] is not None
        ) and tokens is None:
            raise RuntimeError("the length filter needs the base tokenizer for token bounds")

    def filter(self, example: Example) -> Verdict | None:
        text = text_of(example, self.field)
        chars = len(text)
        low, high = self.bounds["min_chars"], self.bounds["max_chars"]
        if low is not None and chars < low:
            return drop("below min_chars", f"{self.field}: {chars} < {low} chars")
        if high is not None and chars > high:
            return drop("above max_chars", f"{self.field}: {chars} > {high} chars")
        low, high = self.bounds["min_tokens"], self.bounds["max_tokens"]
        if low is None and high is None:
            return None
        assert self.tokens is not None
        count = self.tokens.count(text)
        if low is not None and count < low:
            return drop("below min_tokens", f"{self.field}: {count} < {low} tokens")
        if high is not None and count > high:
            return drop("above max_tokens", f"{self.field}: {count} > {high} tokens")
        return None
