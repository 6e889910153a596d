"""`recipe sweep RECIPE [--resume]`: run the trials of the recipe's `sweep:` section, write
``runs/<name>/sweeps/<id>/`` (sweep.csv, sweep.md, best.yaml) and run the winner with the
recipe's exports."""

from __future__ import annotations

import argparse
import sys

from runner.commands.common import add_recipe_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest sweep of this recipe (finished trials are kept, trials a "
        "killed session left running run again)",
    )
    parser.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default: ./runs)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runner.sweep.run import run_sweep

    result = run_sweep(
        args.recipe,
        args.overrides,
        resume=args.resume,
        root=Path(args.runs_dir).resolve() if args.runs_dir else None,
        laptop=args.laptop,
    )
    if result.best is None:
        print(f"no trial finished; see {result.folder / 'sweep.md'}", file=sys.stderr)
        return 1
    if result.error is not None:
        raise result.error
    return 0
