"""The held-out test split, read from the data stage's canonical JSONL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EvalCase:
    """One test row: the conversation, and the prompt/reference pair the generation checks use."""

    id: str
    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> list[dict[str, str]]:
        """Every turn before the last assistant turn."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]

    @property
    def reference(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "assistant")


@dataclass
class EvalSet:
    cases: list[EvalCase]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"line", "id", "reason"}


def load_test_split(path: Path) -> EvalSet:
    """Read ``test.jsonl``; a row that cannot be evaluated is kept in ``skipped`` with its reason."""
    cases: list[EvalCase] = []
    skipped: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                skipped.append({"line": line_no, "id": None, "reason": f"not JSON: {exc.msg}"})
                continue
            messages = row.get("messages") or []
            roles = [m.get("role") for m in messages if isinstance(m, dict)]
            if len(roles) != len(messages) or "assistant" not in roles:
                reason = "no assistant turn" if messages else "no messages (raw text row)"
                skipped.append({"line": line_no, "id": row.get("id"), "reason": reason})
                continue
            if roles.index("assistant") == 0 and roles.count("assistant") == len(roles):
                skipped.append({"line": line_no, "id": row.get("id"), "reason": "no prompt turn"})
                continue
            cases.append(EvalCase(str(row.get("id", line_no)), messages, row.get("meta") or {}))
    return EvalSet(cases, skipped)
