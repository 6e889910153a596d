"""Chain the stages of a recipe: key each one, reuse finished ones, run the rest in order.

``run_pipeline`` is what ``recipe run`` calls; ``plan`` is what ``recipe plan`` shows. The stage
table (what each stage reads and which code runs it) is ``runner.run.stages.SPECS``.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import GateFailed, StageError, UserError
from runner.recipe.model import Recipe, content_hash
from runner.run.folder import RunFolder
from runner.run.keys import compute_keys
from runner.run.lock import build_lock
from runner.run.stages import SPECS, enabled_stages
from runner.stage import STAGE_DIRS, StageContext

StageFn = Callable[[Recipe, StageContext], dict[str, Any]]


def runs_root() -> Path:
    """Where run folders go: ``$RECIPE_RUNS_DIR``, else ``runs/`` in the working directory."""
    return Path(os.environ.get("RECIPE_RUNS_DIR", "runs")).resolve()


@dataclass
class StageResult:
    stage: str
    status: str  # "ran", "cached", "failed", "would run"
    key: str
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class PipelineResult:
    recipe: str
    run_dir: Path
    stages: list[StageResult]
    error: Exception | None = None  # the failure that stopped the run, re-raised by the command

    @property
    def failed(self) -> StageResult | None:
        return next((s for s in self.stages if s.status == "failed"), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "run_dir": str(self.run_dir),
            "stages": [asdict(s) for s in self.stages],
        }


def load_stage(name: str) -> StageFn:
    """The stage's ``run`` function; a stage whose code is missing fails with a clear message."""
    module_name, _, attr = SPECS[name].entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StageError(
            name, f"the {name} stage is not available: cannot import {module_name} ({exc})"
        ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise StageError(name, f"the {name} stage is not available: {module_name} has no {attr}()")
    return fn


def select_stages(recipe: Recipe, until: str | None) -> list[str]:
    stages = enabled_stages(recipe)
    if until is None:
        return stages
    if until not in STAGE_DIRS:
        raise UserError(f"--until {until}: not a stage (stages: {', '.join(STAGE_DIRS)})")
    if until not in stages:
        raise UserError(
            f"--until {until}: this recipe does not run the {until} stage "
            f"(it runs: {', '.join(stages)})"
        )
    return stages[: stages.index(until) + 1]


def _prepare(
    recipe: Recipe, root: Path, *, save: bool = True
) -> tuple[list[str], Any, RunFolder, str]:
    all_stages = enabled_stages(recipe)
    keys = compute_keys(recipe, all_stages, root / ".hash-cache.json", save=save)
    run_hash = content_hash({"recipe": recipe.to_dict(), "stages": keys.keys})[:10]
    return all_stages, keys, RunFolder(root, recipe.name, run_hash), run_hash


def run_pipeline(
    recipe: Recipe,
    *,
    until: str | None = None,
    force: str | None = None,
    dry_run: bool = False,
    root: Path | None = None,
    say: Callable[[str], None] = print,
) -> PipelineResult:
    """Run the recipe's stages in order, reusing every stage whose key has a finished output.

    ``force`` re-runs that stage and every stage after it. Stops at the first failure and
    returns with ``error`` set; finished stages stay reusable.
    """
    root = root or runs_root()
    stages = select_stages(recipe, until)
    if force is not None and force not in stages:
        raise UserError(
            f"--force {force}: not among the stages this run covers ({', '.join(stages)})"
        )
    all_stages, keys, folder, run_hash = _prepare(recipe, root, save=not dry_run)
    forced = set(stages[stages.index(force) :]) if force else set()
    result = PipelineResult(recipe.name, folder.run_dir, [])
    to_run = [s for s in stages if s in forced or folder.manifest(s, keys.keys[s]) is None]
    if "train" in to_run and not dry_run:
        from runner.train.stage import preflight

        preflight(recipe)  # e.g. QLoRA without CUDA: refused before the data stage runs
    if not dry_run:
        folder.create(build_lock(recipe, all_stages, keys, run_hash))

    for name in stages:
        key = keys.keys[name]
        manifest = None if name in forced else folder.manifest(name, key)
        if manifest is not None:
            if not dry_run:
                folder.link(name, key, SPECS[name].run_files)
            summary = manifest.get("summary", {})
            result.stages.append(
                StageResult(
                    name, "cached", key, 0.0, summary.get("outputs", {}), summary.get("notes", [])
                )
            )
            say(f"{name}: cached ({folder.entry(name, key)})")
            gate = _gate_failure(name, summary, folder.entry(name, key))
            if gate is not None:  # a reused evaluation that missed its gate still fails the run
                return _stop_at_gate(result, gate, say)
            continue
        if dry_run:
            result.stages.append(StageResult(name, "would run", key))
            say(f"{name}: would run -> {folder.entry(name, key)}")
            continue
        say(f"{name}: running")
        start = time.monotonic()
        try:
            fn = load_stage(name)
            if name in forced:
                folder.invalidate(name, key)
            out = folder.start(name, key, keep_partial=SPECS[name].resumable and name not in forced)
            ctx = StageContext(run_dir=folder.run_dir, out=out, stage=name)
            gate = None
            try:
                summary = fn(recipe, ctx) or {}
            except GateFailed as exc:
                # The evaluation finished and its report is written: keep it like any finished
                # stage (a re-run reuses it), then fail the run with the gate's exit status.
                gate, summary = exc, dict(getattr(exc, "summary", None) or {})
                if not summary:
                    raise
            seconds = time.monotonic() - start
            summary.setdefault("notes", [])
            summary["notes"] = [*ctx.notes, *summary["notes"]]
            final = folder.finish(name, key, summary, seconds, SPECS[name].run_files)
        except (StageError, UserError) as exc:
            seconds = time.monotonic() - start
            result.stages.append(
                StageResult(name, "failed", key, round(seconds, 3), error=str(exc))
            )
            say(f"{name}: FAILED after {seconds:.1f}s")
            result.error = exc
            return result
        summary = folder.manifest(name, key)["summary"]
        result.stages.append(
            StageResult(
                name,
                "ran",
                key,
                round(seconds, 3),
                summary.get("outputs", {}),
                summary.get("notes", []),
            )
        )
        for note in summary.get("notes", []):
            say(f"  note: {note}")
        say(f"{name}: done in {seconds:.1f}s ({final})")
        if gate is not None:
            # Re-checked on the manifest's summary, so the message names the final report path.
            return _stop_at_gate(result, _gate_failure(name, summary, final) or gate, say)

    if stages and all(s.status == "cached" for s in result.stages):
        say(f"nothing to do: every stage of {recipe.name} is up to date ({folder.run_dir})")
    return result


def _gate_failure(stage: str, summary: dict[str, Any], entry: Path) -> GateFailed | None:
    """The gate failure recorded in a finished eval stage's summary, or None."""
    if stage != "eval":
        return None
    from runner.eval.stage import raise_if_gate_missed

    try:
        raise_if_gate_missed(summary, entry / "report.md")
    except GateFailed as exc:
        return exc
    return None


def _stop_at_gate(
    result: PipelineResult, exc: GateFailed, say: Callable[[str], None]
) -> PipelineResult:
    """End the run after a missed gate: later stages (the hub upload) must not run."""
    result.stages[-1].error = str(exc)
    result.error = exc
    say(f"{exc.stage}: GATE MISSED: {exc.message}")
    return result


def plan(recipe: Recipe, *, root: Path | None = None) -> dict[str, Any]:
    """What ``recipe run`` would do, without running anything: every stage (enabled or not,
    cached or not) with what it writes, notes such as sample packing being off, and the
    Axolotl config with its launch command."""
    from runner.train.plan import train_plan

    root = root or runs_root()
    all_stages, keys, folder, _ = _prepare(recipe, root, save=False)
    train = train_plan(recipe)
    stages = []
    for name in STAGE_DIRS:
        entry: dict[str, Any] = {
            "name": name,
            "enabled": name in all_stages,
            "writes": [f"{STAGE_DIRS[name]}/: {SPECS[name].writes}"],
            "notes": train["notes"] if name == "train" else [],
        }
        if name in all_stages:
            key = keys.keys[name]
            entry["status"] = "cached" if folder.manifest(name, key) else "would run"
            entry["key"] = keys.short(name)
        stages.append(entry)
    return {
        "run_dir": str(folder.run_dir),
        "stages": stages,
        "axolotl": train["config"],
        "launch": train["launch"],
        "notes": [],
    }
