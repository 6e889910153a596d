"""`recipe explain RECIPE KEY`: the final value of a key and which file (or --set) set it."""

from __future__ import annotations

import argparse
import json

from runner.commands.common import add_recipe_argument, load_from_args
from runner.errors import UserError
from runner.paths import display_path
from runner.registry import did_you_mean


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser)
    parser.add_argument("key", help="dotted key path, e.g. train.learning_rate or sources[0].path")


def main(args: argparse.Namespace) -> int:
    recipe = load_from_args(args)
    key = args.key.replace("[", ".").replace("]", "").strip(".")
    try:
        value = recipe.value_at(key)
    except KeyError:
        hint = did_you_mean(key, sorted(recipe.origins) + list(recipe.to_dict()))
        raise UserError(f"{args.key}: no such key in {recipe.path.name}{hint}") from None
    print(f"{args.key} = {json.dumps(value, default=str)}")
    parts = key.split(".")
    origin = recipe.origins.get(key)
    if origin is None:
        # Inside a value set as a whole by --set, or not set anywhere: a schema default.
        for cut in range(len(parts) - 1, 0, -1):
            parent = recipe.origins.get(".".join(parts[:cut]))
            if parent is not None and parent.file == "--set":
                origin = parent
                break
    if origin is None:
        print("  default from the recipe schema")
    else:
        where = origin.file if origin.file == "--set" else display_path(origin.file)
        line = f":{origin.line}" if origin.line else ""
        print(f"  set by {where}{line}")
    return 0
