"""Text and metadata filters: `keywords`, `regex`, `emails`, `quality`, `metadata`."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field

from runner.data.example import Example
from runner.data.filters.base import Filter, Redaction, text_of
from runner.data.outcome import Verdict, drop
from runner.data.registries import FILTERS
from runner.recipe.fields import Operation, Pattern


@FILTERS.register
class KeywordsFilter(Filter):
    """Keeps examples mentioning one of ``include`` (when given) and none of ``exclude``."""

    class Options(Operation):
        """Keep or drop examples by the words they mention."""

        type: Literal["keywords"]
        include: tuple[str, ...] = ()
        """Keep only examples mentioning at least one of these."""
        exclude: tuple[str, ...] = ()
        """Drop examples mentioning any of these."""
        case_sensitive: bool = False

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.case_sensitive = options.case_sensitive
        self.include = list(options.include)
        self.exclude = list(options.exclude)

    def filter(self, example: Example) -> Verdict | None:
        text = example.content("all")
        if not self.case_sensitive:
            text = text.lower()

        def norm(word: str) -> str:
            return word if self.case_sensitive else word.lower()

        for word in self.exclude:
            if norm(word) in text:
                return drop("exclude keyword", f"mentions '{word}'")
        if self.include and not any(norm(word) in text for word in self.include):
            return drop("no include keyword", f"mentions none of {self.include}")
        return None


@FILTERS.register
class RegexFilter(Filter):
    """Every ``require`` pattern must match and no ``forbid`` pattern may (anti-patterns,
    deprecated syntax such as Zig's ``@intToFloat``)."""

    class Options(Operation):
        """Regular expressions the example must (`require`) or must not (`forbid`) match."""

        type: Literal["regex"]
        require: tuple[Pattern, ...] = ()
        """Each pattern must match."""
        forbid: tuple[Pattern, ...] = ()
        """No pattern may match (anti-patterns, deprecated syntax)."""
        field: Literal["all", "response", "prompt"] = "response"
        """Which turns are searched."""

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.field = options.field
        self.require = [(p, re.compile(p, re.MULTILINE)) for p in options.require]
        self.forbid = [(p, re.compile(p, re.MULTILINE)) for p in options.forbid]

    def filter(self, example: Example) -> Verdict | None:
        text = text_of(example, self.field)
        for pattern, compiled in self.forbid:
            found = compiled.search(text)
            if found:
                line = text.count("\n", 0, found.start()) + 1
                return drop(
                    "forbidden pattern",
                    f"{self.field} matches /{pattern}/ at line {line}: {found.group(0)!r}",
                )
        for pattern, compiled in self.require:
            if not compiled.search(text):
                return drop("required pattern missing", f"{self.field} lacks /{pattern}/")
        return None


EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])")


@FILTERS.register
class EmailFilter(Redaction):
    """Replaces e-mail addresses in every turn with ``placeholder``, except allowed addresses
    or domains; counted per example."""

    altered_reason = "redacted email"
    dropped_reason = "contains email"

    class Options(Operation):
        """E-mail address redaction."""

        type: Literal["emails"]
        placeholder: str = "<REDACTED_EMAIL>"
        allow: tuple[str, ...] = ()
        """Addresses or domains to leave alone."""
        action: Literal["redact", "drop"] = "redact"
        """`redact` replaces each address; `drop` drops the example (its row in rejected.jsonl
        is redacted all the same)."""

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.placeholder = options.placeholder
        self.allow = {a.lower() for a in options.allow}
        self.action = options.action

    def allowed(self, address: str) -> bool:
        address = address.lower()
        return address in self.allow or address.rsplit("@", 1)[1] in self.allow

    def redact(self, text: str, filename: str, found: Counter[str]) -> str:
        if "@" not in text:
            return text

        def replace(match: re.Match) -> str:
            if self.allowed(match.group(0)):
                return match.group(0)
            found["address(es)"] += 1
            return self.placeholder

        return EMAIL.sub(replace, text)


_MISSING = object()


@FILTERS.register
class QualityFilter(Filter):
    """Keeps examples whose metadata score ``field`` is within [min, max]."""

    class Options(Operation):
        """Keep examples by a score in their metadata."""

        type: Literal["quality"]
        field: str
        """Metadata field holding a score."""
        min: float | None = None
        max: float | None = None
        missing: Literal["keep", "drop"] = "drop"
        """What happens to examples without the score."""

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.field = options.field
        self.min, self.max = options.min, options.max
        self.missing = options.missing

    def filter(self, example: Example) -> Verdict | None:
        value = example.metadata.get(self.field, _MISSING)
        if value is _MISSING or value is None:
            return (
                drop("missing score", f"no '{self.field}' in metadata")
                if self.missing == "drop"
                else None
            )
        try:
            score = float(value)
        except (TypeError, ValueError):
            return drop("score not a number", f"{self.field}={value!r}")
        if self.min is not None and score < self.min:
            return drop("below min score", f"{self.field}={score:g} < {self.min:g}")
        if self.max is not None and score > self.max:
            return drop("above max score", f"{self.field}={score:g} > {self.max:g}")
        return None


@FILTERS.register
class MetadataFilter(Filter):
    """Keeps examples whose metadata ``field`` equals a value, is ``in`` a list or not in one."""

    class Options(Operation):
        """Keep examples by a metadata field's value."""

        type: Literal["metadata"]
        field: str
        equals: Any = None
        """Keep examples whose field has this value (`equals: null` keeps those where it is
        null)."""
        in_: tuple[Any, ...] | None = Field(None, alias="in")
        """Keep examples whose field is one of these."""
        not_in: tuple[Any, ...] | None = None
        """Drop examples whose field is one of these."""

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.field = options.field
        self.has_equals = "equals" in options.model_fields_set
        self.equals: Any = options.equals
        self.within = list(options.in_) if options.in_ is not None else None
        self.not_in = list(options.not_in) if options.not_in is not None else None

    def filter(self, example: Example) -> Verdict | None:
        if self.field not in example.metadata:
            return drop("missing metadata field", f"no '{self.field}' in metadata")
        value = example.metadata[self.field]
        if self.has_equals and value != self.equals:
            return drop("metadata mismatch", f"{self.field}={value!r}, wanted {self.equals!r}")
        if self.within is not None and value not in self.within:
            return drop("metadata mismatch", f"{self.field}={value!r} not in {self.within}")
        if self.not_in is not None and value in self.not_in:
            return drop("metadata mismatch", f"{self.field}={value!r} is in {self.not_in}")
        return None
