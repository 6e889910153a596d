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
    """Rows for the report's data table, from the data stage's ``report.json``.

    Examples written per split, rejections (total and the five most common reasons), bad input
    rows and token lengths per split; for a report of another shape, its scalars two levels deep.
    """
    rows: list[tuple[str, Any]] = []
    written = (report.get("split") or {}).get("written")
    if isinstance(written, dict):
        rows += [(f"examples in {split}", n) for split, n in written.items()]
    rejected = report.get("rejected")
    if isinstance(rejected, dict) and rejected:
        counts = {k: v for k, v in rejected.items() if isinstance(v, int)}
        rows.append(("rejected, all reasons", sum(counts.values())))
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
        rows += [(f"rejected: {reason}", n) for reason, n in top]
    bad = report.get("bad_input")
    if isinstance(bad, dict) and "count" in bad:
        rows.append(("bad input rows", bad["count"]))
    for split, stats in (report.get("tokens") or {}).items():
        if isinstance(stats, dict) and {"mean", "p95", "max"} <= stats.keys():
            rows.append(
                (
                    f"tokens per {split} example (mean / p95 / max)",
                    f"{stats['mean']} / {stats['p95']} / {stats['max']}",
                )
            )
    if rows:
        return rows
    for key, value in report.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            rows.append((key, value))
        elif isinstance(value, dict):
            rows += [
                (f"{key}.{sub}", inner)
                for sub, inner in value.items()
                if isinstance(inner, int | float) and not isinstance(inner, bool)
            ]
    return rows


def token_histogram(data_dir: Path) -> Path | None:
    """The data stage's token-length histogram (``report.json`` names it; else a PNG named so)."""
    if not data_dir.is_dir():
        return None
    named_in_report = read_data_report(data_dir).get("histogram")
    if isinstance(named_in_report, str) and (data_dir / named_in_report).is_file():
        return data_dir / named_in_report
    pngs = sorted(data_dir.rglob("*.png"))
    named = [p for p in pngs if "hist" in p.name or "token" in p.name]
    return (named or pngs or [None])[0]
