"""`recipe runs [NAME] [--json]`: every run (of one recipe), with its version, date, status and
key numbers (last training loss, held-out loss and pass rate of the fine-tuned model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="a recipe name (or recipe file)")
    parser.add_argument("--runs-dir", metavar="DIR", help="where run folders are (default: ./runs)")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")


def _number(value, kind: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if kind == "rate" else f"{value:.4f}"


def table(runs) -> str:
    header = (
        "recipe",
        "run",
        "version",
        "created",
        "status",
        "train loss",
        "held-out loss",
        "pass rate",
        "parent",
    )
    rows = [
        (
            r.recipe,
            r.run + (" (latest)" if r.latest else ""),
            ", ".join(r.versions) or "-",
            r.created[:16].replace("T", " "),
            r.status,
            _number(r.train_loss),
            _number(r.held_out_loss),
            _number(r.pass_rate, "rate"),
            r.parent or "-",
        )
        for r in runs
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join([head, "  ".join("-" * w for w in widths), *lines])


def main(args: argparse.Namespace) -> int:
    from runner.errors import UserError
    from runner.pipeline import runs_root
    from runner.run.listing import list_runs

    root = Path(args.runs_dir).resolve() if args.runs_dir else runs_root()
    name = args.name
    if name and Path(name).is_file():
        from runner.recipe.load import load_recipe

        name = load_recipe(name).name
    if not root.is_dir():
        raise UserError(f"no runs yet: {root} does not exist")
    if name and not (root / name).is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise UserError(f"no runs of '{name}' in {root} (recipes with runs: {', '.join(known)})")
    runs = list_runs(root, name)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
    elif not runs:
        print(f"no runs in {root}")
    else:
        print(table(runs))
    return 0
