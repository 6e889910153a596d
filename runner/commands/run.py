"""`recipe run RECIPE [--until STAGE] [--force STAGE] [--dry-run] [--json]`: run a recipe end to
end, reusing every stage whose inputs did not change.

With a `compute.target` whose engine is Ray, Slurm or SkyPilot, the run is submitted there (the
nodes run this same command, carrying the target, so they run instead of submitting again). On
a node other than the first of a multi-node run, it joins node 0's training and exits.
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="where run folders go (default: the target's runs_dir, else ./runs)",
    )
    parser.add_argument(
        "--node-rank",
        metavar="K",
        type=int,
        help="this machine's rank in a multi-node run (default: from Slurm or SkyPilot)",
    )


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runner.commands.summary import summary_lines
    from runner.compute.nodes import Node, leading, this_node
    from runner.compute.profiles import carried_target, recipe_target
    from runner.logs import show_progress
    from runner.pipeline import run_pipeline, runs_root

    recipe = load_from_args(args)
    show_progress(not args.quiet)
    # With --json, stdout carries only the summary; progress goes to stderr.
    if args.quiet:
        say = lambda m: None  # noqa: E731
    elif args.json:
        say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    else:
        say = lambda m: print(m, flush=True)  # noqa: E731
    if recipe.sweep is not None:
        say(f"note: this runs the recipe once; `recipe sweep {args.recipe}` runs its sweep: trials")
    target = recipe_target(recipe)
    if target is not None and target.profile.remote and carried_target() is None:
        from runner.compute.dispatch import submit

        write = (lambda text: sys.stderr.write(text)) if args.json else None
        outcome = submit(
            recipe,
            args.overrides,
            until=args.until,
            force=args.force,
            runs_dir=args.runs_dir,
            dry_run=args.dry_run,
            say=say,
            write=write,
        )
        if args.json:
            print(json.dumps(outcome, indent=2, default=str))
        return 0

    runs = args.runs_dir or (target.profile.runs_dir if target is not None else None)
    root = Path(runs).resolve() if runs else runs_root()
    node = Node()
    if target is not None and target.backend != "ray" and recipe.compute.nodes > 1:
        if args.node_rank is not None:
            os.environ["RECIPE_NODE_RANK"] = str(args.node_rank)  # the train stage reads it too
        node = this_node(recipe.compute.nodes, args.node_rank)
    if node.rank > 0:
        from runner.compute.dispatch import join

        return join(recipe, root, node, say)
    with leading(node, root / recipe.name):
        result = run_pipeline(
            recipe,
            until=args.until,
            force=args.force,
            dry_run=args.dry_run,
            root=root,
            say=say,
        )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    elif not args.dry_run and result.stages:
        print("\n" + "\n".join(summary_lines(result)), flush=True)
    if result.error is not None:
        raise result.error
    return 0
