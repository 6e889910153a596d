"""`recipe run RECIPE [--until STAGE] [--force STAGE] [--dry-run] [--json]`: run a recipe end to
end, reusing every stage whose inputs did not change."""

from __future__ import annotations

import argparse
import json
import sys

from runner.commands.common import add_recipe_argument, load_from_args
from runner.run.stages import STAGES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser)
    parser.add_argument(
        "--until", metavar="STAGE", choices=list(STAGES), help="stop after this stage"
    )
    parser.add_argument(
        "--force",
        metavar="STAGE",
        choices=list(STAGES),
        help="re-run this stage and every one after it",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would run; run nothing")
    parser.add_argument("--json", action="store_true", help="end with a JSON summary of each stage")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and the final summary"
    )
    parser.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default: ./runs)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runner.commands.summary import summary_lines
    from runner.logs import show_progress
    from runner.pipeline import run_pipeline

    recipe = load_from_args(args)
    show_progress(not args.quiet)
    # With --json, stdout carries only the summary; progress goes to stderr.
    if args.quiet:
        say = lambda m: None  # noqa: E731
    elif args.json:
        say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    else:
        say = lambda m: print(m, flush=True)  # noqa: E731
    result = run_pipeline(
        recipe,
        until=args.until,
        force=args.force,
        dry_run=args.dry_run,
        root=Path(args.runs_dir).resolve() if args.runs_dir else None,
        say=say,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    elif not args.dry_run and result.stages:
        print("\n" + "\n".join(summary_lines(result)), flush=True)
    if result.error is not None:
        raise result.error
    return 0
