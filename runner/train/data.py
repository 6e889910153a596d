"""The data Axolotl reads: the data stage's canonical JSONL, reduced to what training needs.

The canonical rows carry ``meta`` with fields whose types vary from row to row (a line number
here, a version string there); ``datasets`` infers one Arrow schema for a JSON file and fails
deep inside Axolotl when they disagree (axolotl-ai-cloud/axolotl#879, #1028). The train stage
therefore hands Axolotl a copy with ``id`` and ``messages`` only, checked row by row, plus the
per-turn training flag that ``prompt.train_on: last_assistant`` needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import StageError
from runner.train.config import TRAIN_FILE, TRAIN_FLAG, VAL_FILE

ROLES = {"system", "user", "assistant"}


@dataclass
class PreparedData:
    folder: Path
    counts: dict[str, int] = field(default_factory=dict)
    assistant_turns: int = 0


def _row_problem(row: object) -> str | None:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        return "no `messages` list"
    messages = row["messages"]
    if not messages:
        return "empty `messages`"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"messages[{i}] has no system/user/assistant role"
        if not isinstance(m.get("content"), str):
            return f"messages[{i}].content is not text"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant turn to train on"
    return None


def _training_row(row: dict, train_on: str) -> dict:
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if train_on == "last_assistant":
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        for i, m in enumerate(messages):
            m[TRAIN_FLAG] = i == last
    return {"id": str(row.get("id", "")), "messages": messages}


def prepare_training_data(data_dir: Path, out_dir: Path, train_on: str) -> PreparedData:
    """Write ``train.jsonl``/``val.jsonl`` for Axolotl from the data stage's files.

    A malformed row stops the stage with its file and line: the data stage is meant to have
    written only valid rows, so one here is a bug to report, not data to drop silently.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = PreparedData(out_dir)
    for name in (TRAIN_FILE, VAL_FILE):
        src = data_dir / name
        count = 0
        with (out_dir / name).open("w", encoding="utf-8") as dst:
            if src.is_file():
                with src.open(encoding="utf-8") as fh:
                    for lineno, line in enumerate(fh, 1):
                        if not line.strip():
                            continue
                        try:
                            row = json.loads(line)
                        except ValueError as exc:
                            raise StageError("train", f"{src}:{lineno}: not JSON ({exc})") from None
                        problem = _row_problem(row)
                        if problem:
                            raise StageError("train", f"{src}:{lineno}: {problem}")
                        out = _training_row(row, train_on)
                        if name == TRAIN_FILE:
                            prepared.assistant_turns += sum(
                                1 for m in out["messages"] if m["role"] == "assistant"
                            )
                        dst.write(json.dumps(out, ensure_ascii=False) + "\n")
                        count += 1
        prepared.counts[name.removesuffix(".jsonl")] = count
    if not (data_dir / TRAIN_FILE).is_file():
        raise StageError("train", f"the data stage left no {TRAIN_FILE} in {data_dir}")
    if prepared.counts["train"] == 0:
        raise StageError(
            "train",
            f"{data_dir / TRAIN_FILE} has no examples: every row was filtered out "
            f"(see the data stage's dropped rows in {data_dir})",
        )
    return prepared
