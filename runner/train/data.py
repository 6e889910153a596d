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

from runner.dataset import Conversation, read_fim_split, read_split
from runner.errors import StageError
from runner.train.config import FIM_TRAIN_FILE, FIM_VAL_FILE, TRAIN_FILE, TRAIN_FLAG, VAL_FILE


@dataclass
class PreparedData:
    folder: Path
    counts: dict[str, int] = field(default_factory=dict)
    fim_counts: dict[str, int] = field(default_factory=dict)  # infill rows per split
    assistant_turns: int = 0
    rows: list[Conversation] = field(default_factory=list)  # the training split
    notes: list[str] = field(default_factory=list)


def _training_row(row: Conversation, train_on: str) -> dict:
    messages = [dict(m) for m in row.messages]
    if train_on == "last_assistant":
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        for i, m in enumerate(messages):
            m[TRAIN_FLAG] = i == last
    return {"id": row.id, "messages": messages}


def _infill_row(row: Conversation, bos: str, eos: str) -> dict:
    """An infill row as Axolotl's ``input_output`` type reads it: the prompt (BOS when the
    tokenizer adds one, then prefix and suffix in the family's FIM tokens) untrained, the middle
    and the end token trained. As the chat rows train the assistant's turns only, the model
    learns to write the middle and stop, not to predict the prompt: trained on the prompt too,
    a tiny model learned that a suffix line is followed by the FIM end token and wrote that
    token after the middle (2 infills of 3 in tests/pipeline/test_fim_teacher.py)."""
    prompt = "".join(m["content"] for m in row.messages[:-1] if m["role"] != "system")
    return {
        "id": row.id,
        "segments": [
            {"label": False, "text": bos + prompt},
            {"label": True, "text": row.messages[-1]["content"] + eos},
        ],
    }


def prepare_training_data(
    data_dir: Path, out_dir: Path, train_on: str, fim_bos: str = "", fim_eos: str | None = None
) -> PreparedData:
    """Write ``train.jsonl``/``val.jsonl`` for Axolotl from the data stage's files, and
    ``train.fim.jsonl``/``val.fim.jsonl`` (prompt and middle segments) from its infill rows:
    ``fim_bos`` starts each prompt, ``fim_eos`` (the trained tokenizer's eos) ends each middle.

    A row that is not a conversation is skipped and reported (``runner.dataset``'s policy).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = PreparedData(out_dir)
    for split, name in (("train", TRAIN_FILE), ("val", VAL_FILE)):
        rows = read_split(data_dir, split)
        if note := rows.skip_note():
            prepared.notes.append(note)
        with (out_dir / name).open("w", encoding="utf-8") as dst:
            for row in rows.rows:
                dst.write(json.dumps(_training_row(row, train_on), ensure_ascii=False) + "\n")
        prepared.counts[split] = len(rows.rows)
        if split == "train":
            prepared.rows = rows.rows
            prepared.assistant_turns = sum(
                1 for r in rows.rows for m in r.messages if m["role"] == "assistant"
            )
    for split, name in (("train", FIM_TRAIN_FILE), ("val", FIM_VAL_FILE)):
        rows = read_fim_split(data_dir, split)
        if note := rows.skip_note():
            prepared.notes.append(note)
        if rows.rows:
            if not fim_eos:
                raise StageError("train", "infill rows need an eos token: the base has none")
            with (out_dir / name).open("w", encoding="utf-8") as dst:
                for row in rows.rows:
                    record = _infill_row(row, fim_bos, fim_eos)
                    dst.write(json.dumps(record, ensure_ascii=False) + "\n")
        prepared.fim_counts[split] = len(rows.rows)
    if prepared.counts["train"] + prepared.fim_counts["train"] == 0:
        raise StageError(
            "train",
            f"{data_dir / TRAIN_FILE} has no examples: every row was filtered out "
            f"(see the data stage's report.md and rejected.jsonl in {data_dir})",
        )
    return prepared
