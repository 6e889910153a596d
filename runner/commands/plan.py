"""`recipe plan RECIPE [--json]`: the resolved recipe, the stages that would run with what each
writes, and the Axolotl config, without running anything."""

from __future__ import annotations

import argparse
import json

import yaml

from runner.commands.common import add_recipe_argument, load_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def main(args: argparse.Namespace) -> int:
    from runner.pipeline import plan

    recipe = load_from_args(args)
    result = plan(recipe)
    if args.json:
        print(json.dumps({"recipe": recipe.to_dict(), **result}, indent=2, default=str))
        return 0
    print(f"# recipe {recipe.name} ({recipe.path})")
    print(yaml.safe_dump(recipe.to_dict(), sort_keys=False, width=100).rstrip())
    print("\n# stages")
    for stage in result["stages"]:
        mark = "run " if stage.get("enabled", True) else "skip"
        print(f"  [{mark}] {stage['name']:<7} -> {', '.join(stage.get('writes', [])) or '-'}")
        for note in stage.get("notes", []):
            print(f"           note: {note}")
    for stage in result["stages"]:
        details = stage.get("details") or {}
        if "axolotl" in details:
            print(f"\n# {stage['name']}: axolotl config (paths relative to the stage folder)")
            print(yaml.safe_dump(details["axolotl"], sort_keys=False, width=100).rstrip())
        if "launch" in details:
            print(f"\n# {stage['name']}: launch, in the stage folder")
            print("  " + " ".join(details["launch"]))
    return 0
