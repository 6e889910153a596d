"""Helpers shared by test folders (imported as ``tests.helpers``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def recipe_of(config: dict[str, Any], folder: Path) -> Any:
    """A validated recipe from plain data, as if read from ``folder/<name>.yaml``.

    Required sections a test does not care about get minimal values: one instructions file
    written in ``folder``, and the tiny Qwen2 base.
    """
    from runner.recipe.load import recipe_from_dict

    data: dict[str, Any] = {"recipe": 1, "name": "t", **config}
    if "sources" not in data:
        path = folder / "data.jsonl"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            record = {"instruction": "Say hi", "input": "", "output": "hi"}
            path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        data["sources"] = [{"type": "instructions", "path": str(path)}]
    data.setdefault("model", {"base": "tiny:qwen2"})
    return recipe_from_dict(data, Path(folder) / f"{data['name']}.yaml")


def options(registry: Any, spec: dict[str, Any]) -> Any:
    """The validated options of an operation written as recipe data (``{"type": ..., ...}``)."""
    return registry.get(spec["type"]).Options.model_validate(spec)


def stage_context(run_dir: Path, stage: str, out: Path | None = None) -> Any:
    """The context the pipeline hands a stage: a fresh folder (``out``, default
    ``run_dir/.<stage>.tmp``), and the folders of the upstream stages it declares that
    ``run_dir`` has."""
    from runner.run.context import StageContext
    from runner.run.stages import SPECS

    out = out or run_dir / f".{stage}.tmp"
    out.mkdir(parents=True)
    inputs = {}
    for name in SPECS[stage].after:
        folder = run_dir / SPECS[name].folder
        inputs[name] = folder if folder.is_dir() else None
    return StageContext(stage=stage, out=out, run_dir=run_dir, inputs=inputs, key="0" * 64)


def run_stage(run: Any, recipe: Any, ctx: Any) -> Any:
    """Run a stage's ``run`` as the pipeline does, with the recipe keys the stage declares."""
    from runner.pipeline import view

    return run(view(recipe, ctx.stage), ctx)
