"""Arguments every recipe command shares: the recipe file and `--set key.path=value`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


def add_recipe_argument(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    parser.add_argument(
        "recipe",
        nargs="+" if many else None,
        metavar="RECIPE",
        help="recipe YAML file" + ("s" if many else ""),
    )
    add_set_argument(parser)
    parser.add_argument(
        "--laptop",
        action="store_true",
        help="try the recipe on this CPU: the base's family as a tiny model, a 16-bit LoRA, "
        "enough steps to learn to stop, no gate (the changes are listed)",
    )


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. --set train.epochs=1 (repeatable)",
    )


def load_from_args(args: argparse.Namespace, path: str | None = None) -> Recipe:
    """Load the recipe named on the command line; print its warnings to stderr."""
    from runner.recipe.load import load_recipe

    recipe = load_recipe(path or args.recipe, args.overrides, laptop=getattr(args, "laptop", False))
    for warning in recipe.warnings:
        print(warning, file=sys.stderr)
    return recipe
