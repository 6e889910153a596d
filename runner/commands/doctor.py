"""`recipe doctor [RECIPE] [--target NAME] [--json]`: check CUDA, bitsandbytes, Axolotl, llama.cpp,
Ollama and disk space (for the recipe's merge and GGUF exports when a recipe is given), and
whether a compute target answers (the recipe's `compute.target`, or `--target NAME`, looked up
beside the recipe or in ./compute.yaml, then ~/.config/recipe-runner/compute.yaml). Exits 1 when
something a run needs is missing."""

from __future__ import annotations

import argparse
import json

from runner.commands.common import add_set_argument, load_from_args

MARK = {"ok": "ok  ", "warn": "warn", "missing": "MISS"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "recipe", nargs="?", metavar="RECIPE", help="size the disk check for this recipe"
    )
    add_set_argument(parser)
    parser.add_argument(
        "--target", metavar="NAME", help="check that this compute profile answers from here"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runner.compute.profiles import find_target
    from runner.doctor import as_json, run_checks

    recipe = load_from_args(args) if args.recipe else None
    target = None
    name = args.target or (recipe.compute.target if recipe is not None else None)
    if name is not None:
        # Beside the recipe; without one, ./compute.yaml (then the user's own file).
        beside = recipe.path if recipe is not None else Path.cwd() / "recipe.yaml"
        target = find_target(beside, name)
    checks = run_checks(recipe, target=target)
    if args.json:
        print(json.dumps(as_json(checks), indent=2))
    else:
        for check in checks:
            print(f"[{MARK[check.status]}] {check.name:<13} {check.detail}")
            if check.fix:
                print(f"       {'':<13} fix: {check.fix}")
    return 1 if any(c.status == "missing" for c in checks) else 0
