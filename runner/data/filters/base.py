"""The step kinds of `filters:` (huggingface/datatrove's ``BaseFilter`` shape).

Three kinds, one protocol:

- ``Filter``: ``filter(example)`` answers keep (``None``), ``drop(reason, detail)``, or
  ``note(reason)`` (kept, counted: "not checked").
- ``Redaction``: ``redact(text, filename, found)`` alters text and counts what it changed per
  kind; the base class applies it to every turn and answers ``alter`` with the counts, or
  ``drop`` when the recipe asks for ``action: drop``.
- ``IndexFilter`` (dedupe): ``key(example)`` is the expensive part, computed where the example
  is read (worker processes); ``check(key, example)`` decides against an index shared by all
  examples, in the main process and in input order, so results do not depend on how the work
  was spread over processes.

A step never writes or counts its decisions itself: ``apply`` (worker side) answers, and
``settle`` (main side, in recipe order) turns the answer into a decision that the base class
counts and writes to ``rejected.jsonl`` through the sink it is given, so every drop and every
alteration is explained afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.data.example import Example
from runner.data.outcome import Rejection, Verdict, alter, drop
from runner.data.tokenizer import TokenCounter
from runner.recipe.fields import Operation


@dataclass
class Pending:
    """An index filter's key, waiting for the main process to check it."""

    key: Any


class Filter:
    """A step of `filters:`. Subclasses implement ``filter`` (or are a ``Redaction`` or an
    ``IndexFilter``)."""

    Options = Operation

    def __init__(self, options: Any, tokens: TokenCounter | None = None):
        self.options = options
        self.type = options.type
        self.stage = f"filter:{self.type}"
        self.tokens = tokens
        self.position = 0  # its index in `filters:`, set by the stage
        self.dropped: Counter[str] = Counter()
        self.altered: Counter[str] = Counter()
        self.altered_items = 0  # things changed (secrets, addresses), not examples
        self.notes: Counter[str] = Counter()

    def filter(self, example: Example) -> Verdict | None:
        """None to keep; ``drop(reason, detail)``; ``note(reason, detail)`` to keep and count."""
        raise NotImplementedError

    # -- the protocol the stage drives ------------------------------------------------------
    def apply(self, example: Example) -> Verdict | Pending | None:
        """Worker side: this step's answer for ``example`` (None: kept unchanged)."""
        return self.filter(example)

    def settle(
        self, answer: Verdict | Pending, example: Example, sink: Callable[[Rejection], None]
    ) -> bool:
        """Main side, in recipe order: count the decision, write the dropped or altered row
        to ``sink``; False when the example is dropped."""
        verdict = self.decide(answer, example)
        if verdict is None:
            return True
        if verdict.action == "note":
            self.notes[verdict.reason] += 1
            return True
        if verdict.action == "alter":
            self.altered[verdict.reason] += 1
            self.altered_items += verdict.count
        else:
            self.dropped[verdict.reason] += 1
        sink(self.rejection(verdict, example))
        return verdict.action != "drop"

    def decide(self, answer: Verdict | Pending, example: Example) -> Verdict | None:
        assert isinstance(answer, Verdict)
        return answer

    def rejection(self, verdict: Verdict, example: Example) -> Rejection:
        return Rejection(
            self.stage,
            verdict.reason,
            verdict.detail,
            file=example.metadata.get("source_file"),
            line=example.metadata.get("line"),
            # A whole document (a redacted file) is named, not copied: its examples say enough.
            example=None if example.is_raw else example,
            action=verdict.action,
            extra={"filter_index": self.position},
        )

    def stats(self) -> dict[str, Any]:
        """What this step did, for the report."""
        return {
            "index": self.position,
            "type": self.type,
            "dropped": dict(self.dropped),
            "altered": dict(self.altered),
            "altered_items": self.altered_items,
            "notes": dict(self.notes),
        }


class Redaction(Filter):
    """A step that replaces what it finds in the text (secrets, e-mail addresses) and counts
    it by kind; it drops the example only when its options say ``action: drop``."""

    altered_reason = "redacted"
    dropped_reason = "contains redacted text"
    action = "redact"

    def redact(self, text: str, filename: str, found: Counter[str]) -> str:
        """``text`` with what this step finds replaced; ``found[kind] += 1`` for each."""
        raise NotImplementedError

    def filter(self, example: Example) -> Verdict | None:
        found: Counter[str] = Counter()
        filename = example.metadata.get("path") or "example.txt"
        if example.is_raw:
            example.text = self.redact(example.text, filename, found)
        for message in example.messages:
            message["content"] = self.redact(message["content"], filename, found)
        if not found:
            return None
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
        if self.action == "drop":
            return drop(self.dropped_reason, detail)
        return alter(self.altered_reason, detail, sum(found.values()))

    def redact_value(self, value: Any, filename: str) -> Any:
        """Every string inside JSON-like ``value`` redacted (keys and structure kept): a report
        sample must not carry what the dataset had removed."""
        if isinstance(value, str):
            return self.redact(value, filename, Counter())
        if isinstance(value, dict):
            return {key: self.redact_value(item, filename) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(item, filename) for item in value]
        return value


def scrub(value: Any, filename: str, steps: list[Any]) -> Any:
    """``value`` (a report sample's "before") with every redaction step among ``steps`` applied
    to its strings: the report must not carry what the dataset had removed."""
    for step in steps:
        if isinstance(step, Redaction):
            value = step.redact_value(value, filename)
    return value


class IndexFilter(Filter):
    """A filter that decides against what it kept before (dedupe)."""

    def key(self, example: Example) -> Any:
        """What ``check`` needs, computed in the worker (a hash, a MinHash)."""
        raise NotImplementedError

    def check(self, key: Any, example: Example) -> Verdict | None:
        """Decide against the shared index (main process); index the example when kept."""
        raise NotImplementedError

    def apply(self, example: Example) -> Pending:
        return Pending(self.key(example))

    def decide(self, answer: Verdict | Pending, example: Example) -> Verdict | None:
        assert isinstance(answer, Pending)
        return self.check(answer.key, example)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), **self.index_stats()}

    def index_stats(self) -> dict[str, Any]:
        return {}


def text_of(example: Example, field: str) -> str:
    """The text a filter measures: ``all`` turns, the ``response`` or the ``prompt``."""
    return example.content(field)
