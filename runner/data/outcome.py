"""What a data step says about an example: keep, alter (with a counted reason) or drop/reject.

Every decision other than "keep" becomes a row of ``rejected.jsonl`` and a count in the report,
so that no example disappears without a stated reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.data.example import Example


@dataclass
class Verdict:
    """A filter's answer for one example. ``None`` from a filter means keep unchanged.

    ``action`` is ``drop``, ``alter`` or ``note`` (kept unchanged, but counted: "not checked"); ``reason`` is a short stable category (counted in the
    report, asserted in tests); ``detail`` says exactly what was found; ``count`` is how many
    things were altered (e.g. secrets redacted).
    """

    action: str
    reason: str
    detail: str = ""
    count: int = 1


def drop(reason: str, detail: str = "") -> Verdict:
    return Verdict("drop", reason, detail)


def note(reason: str, detail: str = "") -> Verdict:
    return Verdict("note", reason, detail)


def alter(reason: str, detail: str = "", count: int = 1) -> Verdict:
    return Verdict("alter", reason, detail, count)


@dataclass
class Rejection:
    """A dropped or altered example, or a piece of bad input, with where it came from.

    ``stage`` names the step (``source:zig``, ``extract:explain_code``, ``filter:regex``,
    ``balance``, ``split``); ``file``/``line`` point at the input when known.
    """

    stage: str
    reason: str
    detail: str = ""
    file: str | None = None
    line: int | None = None
    example: Example | None = None
    action: str = "drop"
    bad_input: bool = False
    raw: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        row: dict[str, Any] = {"stage": self.stage, "action": self.action, "reason": self.reason}
        if self.detail:
            row["detail"] = self.detail
        if self.file is not None:
            row["file"] = self.file
        if self.line is not None:
            row["line"] = self.line
        if self.bad_input:
            row["bad_input"] = True
        if self.example is not None:
            row["id"] = self.example.id
            row["example"] = self.example.to_record()
        if self.raw is not None:
            row["raw"] = self.raw
        row.update(self.extra)
        return row

    def where(self) -> str:
        if self.file is None:
            return self.stage
        return f"{self.file}:{self.line}" if self.line is not None else self.file


def bad_input(
    stage: str, reason: str, detail: str, file: str, line: int | None = None, raw: Any = None
) -> Rejection:
    """A rejection for input that could not be read or understood (malformed JSON, missing field)."""
    if isinstance(raw, str) and len(raw) > 2000:
        raw = raw[:2000] + "..."
    return Rejection(stage, reason, detail, file=file, line=line, bad_input=True, raw=raw)
