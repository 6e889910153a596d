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


def estimates(recipe, result: dict) -> tuple[dict | None, dict]:
    """The memory/disk estimate and the steps, from the data stage's report when it ran."""
    from pathlib import Path

    from runner.models.tiny import is_tiny
    from runner.train.estimate import estimate, steps
    from runner.train.hardware import cuda_available

    # A real base is sized for the GPU it will train on, also when the plan runs on a laptop.
    cuda = cuda_available() or not is_tiny(recipe.model.base)
    data = next(s for s in result["stages"] if s["name"] == "data")
    report = None
    if data.get("status") == "cached":
        report_file = (
            Path(result["run_dir"]).parent / "stages" / f"data-{data['key']}" / "report.json"
        )
        report = json.loads(report_file.read_text()) if report_file.is_file() else None
    cost = estimate(recipe, cuda=cuda)
    return (cost.to_json() if cost else None), vars(steps(recipe, cuda=cuda, data_report=report))


def main(args: argparse.Namespace) -> int:
    from runner.pipeline import plan
    from runner.train.estimate import Estimate, Steps

    recipe = load_from_args(args)
    result = plan(recipe)
    cost, count = estimates(recipe, result)
    if args.json:
        out = {"recipe": recipe.to_dict(), **result, "estimate": cost, "steps": count}
        print(json.dumps(out, indent=2, default=str))
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
    print("\n# estimate (before any GPU time is spent)")
    for line in Steps(**count).lines():
        print(f"  {line}")
    if cost is None:
        print(f"  {recipe.model.base}: its shape is unknown here (not cached, no published config)")
    else:
        for line in Estimate(**cost).lines():
            print(f"  {line}")
        if cost["gpu"] is None and cost["memory"]["margin"]:
            print("  (sized for a CUDA GPU; name one with compute.gpu: a100-80gb, l4, 24GB...)")
    return 0
