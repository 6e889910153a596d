"""What the earlier stages left for the report: training losses, data counts, the histogram."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

# HF Trainer (under Axolotl) prints each logging step as a Python dict: {'loss': 1.23, ...}.
_LOGGED_DICT = re.compile(r"\{'(?:loss|eval_loss)': [^{}]*\}")


def training_history(train_dir: Path, log_file: Path | None = None) -> list[dict[str, Any]]:
    """Per-step logs of training: ``train/losses.jsonl`` written by the train stage, else the
    ``log_history`` of the newest ``trainer_state.json``.

    HF Trainer writes that file into each checkpoint (and Axolotl into its output folder); the one
    with the highest ``global_step`` holds the whole run. Without any, the ``{'loss': ...}`` lines
    of the training log are parsed instead (steps numbered in order).
    """
    best: tuple[int, list[dict[str, Any]]] | None = None
    losses_file = train_dir / "losses.jsonl"
    if losses_file.is_file():
        rows = _jsonl_dicts(losses_file)
        if rows:
            return rows
    if train_dir.is_dir():
        for path in train_dir.rglob("trainer_state.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            step = int(state.get("global_step") or 0)
            if best is None or step > best[0]:
                best = (step, list(state.get("log_history") or []))
    if best is not None and best[1]:
        return best[1]
    if log_file is None or not log_file.is_file():
        return []
    history = []
    for match in _LOGGED_DICT.finditer(log_file.read_text(errors="replace")):
        try:
            entry = ast.literal_eval(match[0])
        except (ValueError, SyntaxError):
            continue
        if isinstance(entry, dict):
            entry.setdefault("step", len(history) + 1)
            history.append(entry)
    return history


def _jsonl_dicts(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL loss log that carry a loss; a broken line is skipped, not fatal."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and ("loss" in row or "eval_loss" in row):
            row.setdefault("step", len(rows) + 1)
            rows.append(row)
    return rows


def read_data_report(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "report.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}


def data_counts(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """The numbers of the data report worth a table row: scalars up to two levels deep."""
    rows: list[tuple[str, Any]] = []
    for key, value in report.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            rows.append((key, value))
        elif isinstance(value, dict):
            for sub, inner in value.items():
                if isinstance(inner, int | float) and not isinstance(inner, bool):
                    rows.append((f"{key}.{sub}", inner))
    return rows


def token_histogram(data_dir: Path) -> Path | None:
    """The data stage's token-length histogram (the first PNG whose name says so, else any PNG)."""
    if not data_dir.is_dir():
        return None
    pngs = sorted(data_dir.rglob("*.png"))
    named = [p for p in pngs if "hist" in p.name or "token" in p.name]
    return (named or pngs or [None])[0]
