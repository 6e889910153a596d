"""Text and metadata filters: `keywords`, `regex`, `emails`, `quality`, `metadata`."""

from __future__ import annotations

import re
from typing import Any

from runner.data.example import Example
from runner.data.filters.base import Filter, text_of
from runner.data.outcome import Verdict, alter, drop
from runner.data.registries import FILTERS


@FILTERS.register("keywords")
class KeywordsFilter(Filter):
    """Keeps examples mentioning one of ``include`` (when given) and none of ``exclude``."""

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.case_sensitive = bool(spec.get("case_sensitive", False))
        self.include = list(spec.get("include") or [])
        self.exclude = list(spec.get("exclude") or [])

    def __call__(self, example: Example) -> Verdict | None:
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


@FILTERS.register("regex")
class RegexFilter(Filter):
    """Every ``require`` pattern must match and no ``forbid`` pattern may (anti-patterns,
    deprecated syntax such as Zig's ``@intToFloat``)."""

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.field = spec.get("field", "response")
        self.require = [(p, re.compile(p, re.MULTILINE)) for p in spec.get("require") or []]
        self.forbid = [(p, re.compile(p, re.MULTILINE)) for p in spec.get("forbid") or []]

    def __call__(self, example: Example) -> Verdict | None:
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


@FILTERS.register("emails")
class EmailFilter(Filter):
    """Replaces e-mail addresses in every turn with ``placeholder``, except allowed addresses
    or domains; counted per example."""

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.placeholder = spec.get("placeholder", "<REDACTED_EMAIL>")
        self.allow = {a.lower() for a in spec.get("allow") or []}

    def allowed(self, address: str) -> bool:
        address = address.lower()
        return address in self.allow or address.rsplit("@", 1)[1] in self.allow

    def __call__(self, example: Example) -> Verdict | None:
        count = 0

        def replace(match: re.Match) -> str:
            nonlocal count
            if self.allowed(match.group(0)):
                return match.group(0)
            count += 1
            return self.placeholder

        if example.is_raw:
            example.text = EMAIL.sub(replace, example.text)
        for message in example.messages:
            if "@" in message["content"]:
                message["content"] = EMAIL.sub(replace, message["content"])
        return alter("redacted email", f"{count} address(es)", count) if count else None


_MISSING = object()


@FILTERS.register("quality")
class QualityFilter(Filter):
    """Keeps examples whose metadata score ``field`` is within [min, max]."""

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.field = spec["field"]
        self.min, self.max = spec.get("min"), spec.get("max")
        self.missing = spec.get("missing", "drop")

    def __call__(self, example: Example) -> Verdict | None:
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


@FILTERS.register("metadata")
class MetadataFilter(Filter):
    """Keeps examples whose metadata ``field`` equals a value, is ``in`` a list or not in one."""

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.field = spec["field"]
        self.has_equals = "equals" in spec
        self.equals: Any = spec.get("equals")
        self.within = list(spec["in"]) if spec.get("in") is not None else None
        self.not_in = list(spec["not_in"]) if spec.get("not_in") is not None else None

    def __call__(self, example: Example) -> Verdict | None:
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
