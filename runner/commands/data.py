"""`recipe data RECIPE`: build the dataset a recipe describes and print what happened to it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from runner.commands.common import add_recipe_argument, load_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser)
    parser.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default: ./runs)")
    parser.add_argument(
        "--force", action="store_true", help="build the dataset again even if it is up to date"
    )


def main(args: argparse.Namespace) -> int:
    """The data stage of ``recipe run``, into the same run folder (so a later ``recipe run``
    reuses it), followed by the table of what happened to every file and example."""
    from runner.pipeline import run_pipeline

    recipe = load_from_args(args)
    result = run_pipeline(
        recipe,
        until="data",
        force="data" if args.force else None,
        root=Path(args.runs_dir).resolve() if args.runs_dir else None,
    )
    if result.error is not None:
        raise result.error
    folder = Path(result.stages[0].folder)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    print_summary(report, result.run_dir / "data")
    return 0


def print_summary(report: dict[str, Any], out: Path) -> None:
    """The end-of-run table: per source, per filter reason, per split, and the leak check."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="recipe data", show_lines=False)
    columns = (
        "source",
        "listed",
        "with examples",
        "skipped",
        "without examples",
        "rejected",
        "train",
        "val",
        "test",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "source" else "right")
    for name, s in report["sources"].items():
        files = report["files"][name]
        table.add_row(
            name,
            str(files["listed"]),
            str(files["with_examples"]),
            str(files["skipped"]),
            str(files["without_examples"]),
            str(s.get("rejected", 0)),
            str(s.get("in train", 0)),
            str(s.get("in val", 0)),
            str(s.get("in test", 0)),
        )
    console.print(table)
    why = Table(title="files without examples (rejected.jsonl names each)")
    why.add_column("source")
    why.add_column("reason")
    why.add_column("files", justify="right")
    for name, files in report["files"].items():
        for reason, count in files["skipped_by_reason"].items():
            why.add_row(name, f"skipped: {reason}", str(count))
        for reason, count in files["without_examples_by_reason"].items():
            why.add_row(name, reason, str(count))
    if why.row_count:
        console.print(why)
    reasons = Table(title="dropped / altered")
    reasons.add_column("stage: reason")
    reasons.add_column("examples", justify="right")
    for key, count in report["rejected"].items():
        reasons.add_row(key, str(count))
    for f in report["filters"]:
        for reason, count in f["altered"].items():
            reasons.add_row(f"filter:{f['type']}: {reason} (altered)", str(count))
    console.print(reasons)
    leak = report["leak_check"]
    written = report["split"]["written"]
    console.print(
        f"train {written.get('train', 0)} / val {written.get('val', 0)} / test "
        f"{written.get('test', 0)}; leak check: {leak.get('groups_in_several_splits', 0)} groups "
        f"in several splits, {leak.get('train_exact_duplicates_of_val_test', 0)} exact and "
        f"{leak.get('train_near_duplicates_removed', 0)} near duplicates of val/test removed "
        f"from train"
    )
    console.print(f"written to {out} (report.md, rejected.jsonl)")
