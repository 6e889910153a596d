"""The canonical dataset: the data stage's ``train.jsonl``, ``val.jsonl`` and ``test.jsonl`` (one
``{"id", "messages", "meta"}`` row per line), their fill-in-the-middle rows (``<split>.fim.jsonl``,
same shape), and the one reader every later stage uses.

Training, the smoke test and the evaluation read the splits here, with one policy for a row
they cannot use: it is skipped and kept in ``skipped`` with its file, line and reason, which the
stage reports. The data stage writes only valid rows, so a skipped row means a damaged file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")
ROLES = frozenset({"system", "user", "assistant"})


def split_file(folder: Path, split: str) -> Path:
    return folder / f"{split}.jsonl"


def fim_file(folder: Path, split: str) -> Path:
    """The split's fill-in-the-middle rows (``meta.format: fim``): trained as completion text,
    so they are kept apart from the chat rows of ``<split>.jsonl``."""
    return folder / f"{split}.fim.jsonl"


def is_fim(row: dict[str, Any]) -> bool:
    meta = row.get("meta")
    return isinstance(meta, dict) and meta.get("format") == "fim"


@dataclass
class Conversation:
    """One row: the conversation, and the prompt/reference pair the generation checks use."""

    id: str
    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> list[dict[str, str]]:
        """Every turn before the last assistant turn; a conversation that does not end with an
        assistant turn (a fixed test prompt without a reference answer) is all prompt."""
        if self.messages and self.messages[-1]["role"] != "assistant":
            return self.messages
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]

    @property
    def reference(self) -> str | None:
        """The last assistant turn, the answer the model is compared with (None without one)."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            return None
        return self.messages[-1]["content"]

    @property
    def has_prompt(self) -> bool:
        prompt = self.prompt
        return bool(prompt) and prompt[-1]["role"] != "assistant"


@dataclass
class Split:
    """The usable rows of one split file, and the rows skipped with their reasons."""

    name: str
    path: Path
    rows: list[Conversation] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {"line", "id", "reason"}

    def skip_note(self) -> str | None:
        if not self.skipped:
            return None
        first = self.skipped[0]
        return (
            f"{len(self.skipped)} row(s) of {self.path.name} skipped "
            f"(first: line {first['line']}: {first['reason']})"
        )


def row_problem(row: Any) -> str | None:
    """Why a row is not a trainable conversation, or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no messages (raw text row)" if "text" in row else "no `messages` list"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"messages[{i}] has no system/user/assistant role"
        if not isinstance(m.get("content"), str):
            return f"messages[{i}].content is not text"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant turn"
    return None


def read_split(folder: Path, split: str, path: Path | None = None) -> Split:
    """The rows of ``folder/<split>.jsonl`` (an absent file is an empty split)."""
    path = path or split_file(folder, split)
    result = Split(split, path)
    if not path.is_file():
        return result
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                result.skipped.append({"line": line_no, "id": None, "reason": f"not JSON: {exc}"})
                continue
            problem = row_problem(row)
            if problem:
                row_id = row.get("id") if isinstance(row, dict) else None
                result.skipped.append({"line": line_no, "id": row_id, "reason": problem})
                continue
            messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
            meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
            result.rows.append(Conversation(str(row.get("id", line_no)), messages, meta))
    return result


def with_prompts(split: Split) -> Split:
    """The rows a model can be asked (a prompt before the answer); the others are skipped."""
    for row in split.rows:
        if not row.has_prompt:
            split.skipped.append({"line": None, "id": row.id, "reason": "no prompt turn"})
    split.rows = [r for r in split.rows if r.has_prompt]
    return split


def read_fim_split(folder: Path, split: str) -> Split:
    """The infill rows of ``folder/<split>.fim.jsonl``: the user turn is the infill prompt, the
    assistant turn the middle (an absent file is an empty split)."""
    return read_split(folder, split, path=fim_file(folder, split))


def held_out(folder: Path) -> Split:
    """The held-out rows to test a model on: ``test.jsonl``, else ``val.jsonl``."""
    split = with_prompts(read_split(folder, "test"))
    if split.rows:
        return split
    return with_prompts(read_split(folder, "val"))
