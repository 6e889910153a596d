"""Chain the stages of a recipe: key each one, reuse finished ones, run the rest in order.

``run_pipeline`` is what ``recipe run`` calls; ``plan`` is what ``recipe plan`` shows. The stage
table (what each stage reads, when it runs, which code runs it) is ``runner.run.stages.SPECS``;
this module names no stage. A stage returns an ``Outcome``; one with a ``failure`` (a missed
evaluation gate) is kept like any finished stage, and a run that reaches it, or reuses it,
stops there with the failure's exit status.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import Timeout

from runner.errors import StageError, UserError
from runner.hashing import content_hash
from runner.logs import library_output_to
from runner.run.context import Failure, Outcome, RecipeView, StageContext
from runner.run.folder import RunFolder
from runner.run.keys import compute_keys
from runner.run.lock import build_lock
from runner.run.stages import SPECS, STAGES, enabled_stages

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


class RunFailed(StageError):
    """A finished stage's outcome failed the run (exit status from the outcome)."""

    def __init__(self, stage: str, failure: Failure):
        super().__init__(stage, f"{failure.kind}: {failure.message}")
        self.exit_code = failure.exit_code
        self.failure = failure


def runs_root() -> Path:
    """Where run folders go: ``$RECIPE_RUNS_DIR``, else ``runs/`` in the working directory."""
    return Path(os.environ.get("RECIPE_RUNS_DIR", "runs")).resolve()


@dataclass
class StageResult:
    stage: str
    status: str  # "ran", "cached", "failed", "would run"
    key: str
    seconds: float = 0.0
    folder: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # absolute paths
    summary: dict[str, Any] = field(default_factory=dict)
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
        return next((s for s in self.stages if s.status == "failed" or s.error), None)

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.stage == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "run_dir": str(self.run_dir),
            "stages": [asdict(s) for s in self.stages],
        }


def select_stages(recipe: Recipe, until: str | None) -> list[str]:
    stages = enabled_stages(recipe)
    if until is None:
        return stages
    if until not in SPECS:
        raise UserError(f"--until {until}: not a stage (stages: {', '.join(STAGES)})")
    if until not in stages:
        raise UserError(
            f"--until {until}: this recipe does not run the {until} stage "
            f"(it runs: {', '.join(stages)})"
        )
    return stages[: stages.index(until) + 1]


def _prepare(recipe: Recipe, root: Path, *, save: bool = True) -> tuple[list[str], Any, RunFolder]:
    all_stages = enabled_stages(recipe)
    keys = compute_keys(recipe, all_stages, root / recipe.name / ".hash-cache.json", save=save)
    run_hash = content_hash({"recipe": recipe.to_dict(), "stages": keys.keys})[:10]
    return all_stages, keys, RunFolder(root, recipe.name, run_hash)


def load_stage(name: str) -> Callable[..., Outcome]:
    """The stage's ``run`` function; a stage whose code is missing fails with a clear message."""
    spec = SPECS[name]
    try:
        return spec.function()
    except ImportError as exc:
        module = spec.entry.partition(":")[0]
        raise StageError(
            name, f"the {name} stage is not available: cannot import {module} ({exc})"
        ) from None
    except AttributeError:
        raise StageError(name, f"the {name} stage is not available: no {spec.entry}") from None


def view(recipe: Recipe, stage: str) -> RecipeView:
    """The recipe as the stage sees it: only the keys it declares."""
    spec = SPECS[stage]
    return RecipeView(recipe, stage, spec.reads, spec.exports)


def _result(name: str, status: str, key: str, folder: Path, outcome: Outcome, seconds=0.0):
    return StageResult(
        name,
        status,
        key,
        round(seconds, 3),
        str(folder),
        {k: str(folder / v) for k, v in outcome.outputs.items()},
        outcome.summary,
        outcome.notes,
        outcome.failure.message if outcome.failure else None,
    )


def run_pipeline(
    recipe: Recipe,
    *,
    until: str | None = None,
    force: str | None = None,
    dry_run: bool = False,
    root: Path | None = None,
    say: Callable[[str], None] = print,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> PipelineResult:
    """Run the recipe's stages in order, reusing every stage whose key has a finished output.

    ``force`` re-runs that stage and every stage after it. Stops at the first failure and
    returns with ``error`` set; finished stages stay reusable. ``on_event`` receives what a
    watcher needs (the job API): the stages this run covers, then each stage waiting for
    another run's lock, running (with its log file) and finished (its ``StageResult``).
    """
    emit = on_event or (lambda event: None)
    root = root or runs_root()
    stages = select_stages(recipe, until)
    if force is not None and force not in stages:
        raise UserError(
            f"--force {force}: not among the stages this run covers ({', '.join(stages)})"
        )
    all_stages, keys, folder = _prepare(recipe, root, save=not dry_run)
    forced = set(stages[stages.index(force) :]) if force else set()
    result = PipelineResult(recipe.name, folder.run_dir, [])
    to_run = [s for s in stages if s in forced or folder.manifest(s, keys.keys[s]) is None]
    if not dry_run:
        for name in to_run:  # e.g. QLoRA without CUDA: refused before the data stage runs
            check = SPECS[name].hook("preflight")
            if check is not None:
                check(view(recipe, name))
        folder.create(build_lock(recipe, all_stages, keys, folder.run_dir.name))
        emit({"event": "plan", "run_dir": str(folder.run_dir), "stages": stages})

    for name in stages:
        key = keys.keys[name]
        entry = folder.entry(name, key)
        if dry_run:
            status = "would run" if name in to_run else "cached"
            result.stages.append(StageResult(name, status, key, folder=str(entry)))
            say(f"{name}: {status} -> {entry}")
            continue
        try:
            with _stage_lock(folder, name, key, say, emit):
                outcome, seconds, ran = _run_or_reuse(
                    recipe, name, key, folder, keys, name in forced, say, emit
                )
        except (StageError, UserError) as exc:
            result.stages.append(StageResult(name, "failed", key, error=str(exc)))
            emit({"event": "stage", "stage": name, "status": "failed", "error": str(exc)})
            result.error = exc
            return result
        result.stages.append(
            _result(name, "ran" if ran else "cached", key, entry, outcome, seconds)
        )
        emit({"event": "stage", **asdict(result.stages[-1])})
        if outcome.failure is not None:
            result.error = RunFailed(name, outcome.failure)
            say(f"{name}: {outcome.failure.kind.upper()}: {outcome.failure.message}")
            return result

    if stages and all(s.status == "cached" for s in result.stages):
        say(f"nothing to do: every stage of {recipe.name} is up to date ({folder.run_dir})")
    return result


@contextmanager
def _stage_lock(
    folder: RunFolder,
    name: str,
    key: str,
    say: Callable[[str], None],
    emit: Callable[[dict[str, Any]], None],
) -> Iterator[None]:
    """Hold the stage key's lock; say so when another run holds it and this one waits.

    The lock is an OS file lock, released by the kernel when its holder dies (even by
    SIGKILL), so a waiting run takes over from a killed one."""
    lock = folder.lock(name, key)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        say(f"{name}: waiting for another run of this stage to finish")
        emit({"event": "stage", "stage": name, "status": "waiting"})
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _run_or_reuse(
    recipe: Recipe,
    name: str,
    key: str,
    folder: RunFolder,
    keys: Any,
    forced: bool,
    say: Callable[[str], None],
    emit: Callable[[dict[str, Any]], None],
) -> tuple[Outcome, float, bool]:
    """Under the stage's lock: reuse a finished output (perhaps just finished by another run),
    or run the stage. Returns its outcome, seconds spent and whether it ran."""
    spec = SPECS[name]
    outcome = None if forced else folder.outcome(name, key)
    if outcome is not None:
        folder.link(name, key)
        say(f"{name}: cached")
        return outcome, 0.0, False
    if forced:
        folder.invalidate(name, key)
    say(f"{name}: running")
    start = time.monotonic()
    out = folder.start(name, key, keep_partial=spec.resumable and not forced)
    inputs = {
        upstream: (folder.entry(upstream, keys.keys[upstream]) if upstream in keys.keys else None)
        for upstream in spec.after
    }
    ctx = StageContext(stage=name, out=out, run_dir=folder.run_dir, inputs=inputs, key=key)
    emit({"event": "stage", "stage": name, "status": "running", "log": str(ctx.log_file)})
    try:
        with library_output_to(ctx.log_file):
            outcome = load_stage(name)(view(recipe, name), ctx)
    except (StageError, UserError):
        say(f"{name}: FAILED after {time.monotonic() - start:.1f}s")
        raise
    outcome.notes = [*ctx.notes, *outcome.notes]
    seconds = time.monotonic() - start
    folder.finish(name, key, outcome, seconds)
    for note in outcome.notes:
        say(f"  note: {note}")
    say(f"{name}: done in {seconds:.1f}s")
    return outcome, seconds, True


def plan(recipe: Recipe, *, root: Path | None = None) -> dict[str, Any]:
    """What ``recipe run`` would do, without running anything: every stage (enabled or not,
    cached or not) with what it writes and, where a stage has one, its plan (the train stage's
    Axolotl config and launch command, notes such as sample packing being off)."""
    root = root or runs_root()
    all_stages, keys, folder = _prepare(recipe, root, save=False)
    stages = []
    for name, spec in SPECS.items():
        entry: dict[str, Any] = {
            "name": name,
            "enabled": name in all_stages,
            "writes": [f"{spec.folder}/: {spec.writes}"],
            "notes": [],
        }
        if name in all_stages:
            key = keys.keys[name]
            entry["status"] = "cached" if folder.manifest(name, key) else "would run"
            entry["key"] = keys.short(name)
            hook = spec.hook("plan")
            if hook is not None:
                details = hook(view(recipe, name))
                entry["notes"] = details.pop("notes", [])
                entry["details"] = details
        stages.append(entry)
    return {"run_dir": str(folder.run_dir), "stages": stages}
