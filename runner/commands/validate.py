"""`recipe validate RECIPE...`: every mistake of every recipe, with file, line and key; exit 2."""

from __future__ import annotations

import argparse
import sys

from runner.commands.common import add_recipe_argument, load_from_args
from runner.recipe.problems import RecipeErrors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser, many=True)
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def main(args: argparse.Namespace) -> int:
    status = 0
    for path in args.recipe:
        try:
            recipe = load_from_args(args, path)
        except RecipeErrors as exc:
            print(exc, file=sys.stderr)
            status = 2
            continue
        if not args.quiet:
            print(f"{path}: ok ({recipe.name})")
    return status
