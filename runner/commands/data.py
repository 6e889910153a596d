"""`recipe data RECIPE`: build the dataset a recipe describes and print what happened to it."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from runner.commands.common import add_recipe_argument, load_from_args
from runner.stage import StageContext


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/<name>/data)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: up to 2)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from runner.data.build import run

    recipe = load_from_args(args)
    out = args.out or Path("runs") / recipe.name / "data"
    run_dir = out.parent
    # Build in a sibling temporary folder and rename into place: a failed build never leaves a
    # half-written dataset where a finished one is expected.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    ctx = StageContext(run_dir=run_dir, out=staging, stage="data")
    try:
        summary = run(recipe, ctx, workers=args.workers, progress=not args.no_progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    print_summary(summary["report"], out)
    return 0


def print_summary(report: dict[str, Any], out: Path) -> None:
    """The end-of-run table: per source, per filter reason, per split, and the leak check."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="recipe data", show_lines=False)
    for column in ("source", "files", "read", "rejected", "train", "val", "test", "skipped files"):
        table.add_column(
            column, justify="left" if column in ("source", "skipped files") else "right"
        )
    for name, s in report["sources"].items():
        skipped = ", ".join(f"{k} {v}" for k, v in s["files_skipped"].items()) or "-"
        table.add_row(
            name,
            str(s.get("files", 0)),
            str(s.get("read", 0)),
            str(s.get("rejected", 0)),
            str(s.get("in train", 0)),
            str(s.get("in val", 0)),
            str(s.get("in test", 0)),
            skipped,
        )
    console.print(table)
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
