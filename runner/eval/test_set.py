"""`eval.test_set`: a fixed file of test prompts, the same for every version of a model.

The split's test rows change whenever the data changes; a team comparing versions (the @qi
seed's ``--test_set qi_test_cases.jsonl``, Meton's "compare old vs new versions on test
queries") needs prompts that stay put. One JSON object per line (or a JSON list), in either form:

- instruction: ``{"instruction": ..., "input": ..., "output": ...}`` (also ``prompt``/``context``,
  ``response``/``completion``/``reference``), the answer optional;
- messages: ``{"messages": [{"role": "user", "content": ...}, ...]}``, a reference answer when the
  last turn is the assistant's.

``meta`` (or ``metadata``) carries the fields ``eval.group_by`` and ``prompt.system`` read. The
recipe's ``prompt.system`` is added, as the data stage adds it to training examples. A row that
is none of these is skipped with its line and reason, never silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.dataset import ROLES, Conversation, Split
from runner.errors import UserError

INSTRUCTION = ("instruction", "prompt", "question")
INPUT = ("input", "context")
ANSWER = ("output", "response", "completion", "reference", "answer")


def _first(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((row[n] for n in names if row.get(n) not in (None, "")), None)


def _records(path: Path) -> list[tuple[int, Any]]:
    """(line, value) of every record; a JSON list file numbers its items from 1."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise UserError(f"eval.test_set: {path} is not valid JSON: {exc}") from None
        return list(enumerate(items, 1))
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except ValueError as exc:
            records.append((number, ValueError(f"not JSON: {exc}")))
    return records


def _messages(row: dict[str, Any]) -> list[dict[str, str]] | str:
    """The row's conversation, or why it has none."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            return "`messages` is not a non-empty list"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                return f"messages[{i}] has no system/user/assistant role"
            if not isinstance(m.get("content"), str):
                return f"messages[{i}].content is not text"
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    instruction = _first(row, INSTRUCTION)
    if not isinstance(instruction, str):
        return "no `messages` list and no `instruction` (or `prompt`) text"
    extra = _first(row, INPUT)
    user = f"{instruction}\n\n{extra}" if isinstance(extra, str) and extra.strip() else instruction
    messages = [{"role": "user", "content": user}]
    answer = _first(row, ANSWER)
    if answer is not None:
        if not isinstance(answer, str):
            return "the reference answer is not text"
        messages.append({"role": "assistant", "content": answer})
    return messages


def read_test_set(path: Path, system: str | None = None) -> Split:
    """The prompts of ``path`` as conversations, ``system`` (``prompt.system``, rendered with each
    row's ``meta``) first unless the row has its own system turn."""
    from runner.prompt.system import render_system

    split = Split("test_set", path)
    if not path.is_file():
        raise UserError(f"eval.test_set: {path} is not a file")
    for line, row in _records(path):
        if isinstance(row, Exception):
            split.skipped.append({"line": line, "id": None, "reason": str(row)})
            continue
        if not isinstance(row, dict):
            split.skipped.append({"line": line, "id": None, "reason": "not a JSON object"})
            continue
        row_id = str(row.get("id", f"test_set:{line}"))
        messages = _messages(row)
        if isinstance(messages, str):
            split.skipped.append({"line": line, "id": row_id, "reason": messages})
            continue
        meta = row.get("meta", row.get("metadata"))
        meta = dict(meta) if isinstance(meta, dict) else {}
        if messages[0]["role"] != "system":
            try:
                text = render_system(system, {"source": "test_set", **meta})
            except UserError as exc:
                split.skipped.append({"line": line, "id": row_id, "reason": str(exc)})
                continue
            if text:
                messages = [{"role": "system", "content": text}, *messages]
        case = Conversation(row_id, messages, meta)
        if not case.has_prompt:
            split.skipped.append({"line": line, "id": row_id, "reason": "no prompt turn"})
            continue
        split.rows.append(case)
    return split
