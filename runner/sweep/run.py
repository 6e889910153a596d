"""``recipe sweep RECIPE [--resume]``: run the trials of a recipe's `sweep:` and keep the best.

Each trial is an ordinary run of the recipe, with the trial's values applied as ``--set``
overrides through the loader (so every value is validated like a user's), cached and resumable
like any run: the data stage, whose key the swept training keys do not enter, is built once (first,
before any trial) and shared. Trials export only the merged model the evaluation needs; the
recipe's exports run once, for the winner (``promote: best``). Trials run one after another, or
``parallel`` at once in worker processes sharing the study's storage (one GPU each when there
are GPUs). ``stop_early`` feeds the validation loss Axolotl logs during training to Optuna's
pruner, which stops hopeless trials.

The sweep's folder, ``runs/<name>/sweeps/<id>/``, holds ``sweep.json`` (what was swept),
``study.journal`` (Optuna's record), ``sweep.csv`` and ``sweep.md`` (a row per trial, sorted by
the metric, with a picture of the metric against each swept key) and ``best.yaml`` (the winner's
resolved recipe, a recipe like any other).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import StageError, UserError
from runner.hashing import content_hash
from runner.recipe.load import load_recipe
from runner.recipe.problems import RecipeErrors
from runner.sweep.section import (
    SweepSection,
    expand,
    metric_value,
    overrides,
    trial_budget,
)

SWEEPS = "sweeps"
SWEEP_FILE = "sweep.json"


class TrialFailed(StageError):
    """A trial that ran but gave no metric (its run failed, or did not measure it)."""


@dataclass
class Sweep:
    """What every worker needs to run trials (plain data: it crosses to worker processes)."""

    recipe_path: str
    user_overrides: list[str]
    root: str
    folder: str
    study_name: str
    export_override: str
    section: dict[str, Any]
    gpus: list[str] = field(default_factory=list)
    laptop: bool = False  # `--laptop`: every trial tries the recipe on this CPU

    @property
    def spec(self) -> SweepSection:
        return SweepSection.model_validate(self.section)


def _root(root: Path | None) -> Path:
    from runner.pipeline import runs_root

    return root or runs_root()


def sweep_identity(recipe: Any, user_overrides: Sequence[str]) -> str:
    """What makes two sweeps the same one (``--resume`` finds it by this)."""
    return content_hash({"recipe": recipe.to_dict(), "overrides": list(user_overrides)})[:10]


def find_folder(root: Path, recipe: Any, identity: str, resume: bool) -> tuple[Path, bool]:
    """The sweep's folder and whether it is new: ``--resume`` takes the newest sweep of the
    same recipe and overrides; otherwise a new one (its trials still reuse cached stages)."""
    sweeps = root / recipe.name / SWEEPS
    if resume:
        same = [
            p
            for p in sorted(sweeps.glob("*"), reverse=True)
            if (p / SWEEP_FILE).is_file()
            and json.loads((p / SWEEP_FILE).read_text()).get("identity") == identity
        ]
        if not same:
            raise UserError(
                f"--resume: no sweep of this recipe (with these --set values) in {sweeps}; "
                "run it without --resume to start one"
            )
        return same[0], False
    folder = sweeps / f"{time.strftime('%Y%m%d-%H%M%S')}-{identity[:6]}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder, True


def trial_exports(recipe: Any) -> str:
    """The ``export=`` override of a trial: only the merge the evaluation generates from."""
    merges = [e for e in recipe.to_dict()["export"] if e["type"] == "merge"]
    return f"export={json.dumps(merges)}"


def check_values(
    path: str, user_overrides: Sequence[str], section: SweepSection, laptop: bool = False
) -> None:
    """Every listed value (and paired choice, and each range's bounds) applied to the recipe:
    all mistakes at once, before any trial runs."""
    from runner.sweep.section import IntRange, LogUniform, Uniform

    tried: list[dict[str, Any]] = []
    for key, space in section.params.items():
        if isinstance(space, tuple):
            tried += [{key: v} for v in space]
        else:
            bounds = {Uniform: "uniform", LogUniform: "log_uniform", IntRange: "int_"}
            tried += [{key: b} for b in getattr(space, bounds[type(space)])]
    tried += [dict(choice) for choice in section.paired]
    problems: list[str] = []
    for values in tried:
        try:
            load_recipe(path, [*user_overrides, *overrides(values)], laptop=laptop)
        except RecipeErrors as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            problems.append(f"sweep value {shown}:\n" + str(exc))
    if problems:
        raise UserError("\n".join(problems))


def _say(prefix: str, say: Callable[[str], None]) -> Callable[[str], None]:
    return lambda message: say(f"{prefix}{message}")


def run_trial(sweep: Sweep, trial: Any, say: Callable[[str], None] = print) -> float:
    """One trial: its values applied to the recipe, an ordinary run, the metric of its outcome.

    Raises ``optuna.TrialPruned`` when the pruner stopped it, ``TrialFailed`` when the run
    failed or did not measure the metric (Optuna records either; the sweep goes on)."""
    from runner.pipeline import RunFailed, run_pipeline
    from runner.sweep.study import optuna_module, suggest
    from runner.train.progress import TrainingStopped, watch_eval_loss

    optuna = optuna_module()
    section = sweep.spec
    # An enqueued trial carries its grid point (Optuna keeps it in the trial's system attrs).
    enqueued = trial._cached_frozen_trial.system_attrs.get("fixed_params")
    if section.method == "grid" and not enqueued:
        trial.set_user_attr("abandoned", True)  # another worker took the last grid point
        raise TrialFailed("sweep", "no grid combination left")
    values = expand(section, suggest(trial, section))
    trial.set_user_attr("values", values)
    recipe = load_recipe(
        sweep.recipe_path,
        [*sweep.user_overrides, *overrides(values), sweep.export_override],
        laptop=sweep.laptop,
    )
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    say(f"[trial {trial.number}] {shown}")

    def watch(step: int, loss: float) -> None:
        trial.report(loss, step)
        if trial.should_prune():
            raise TrainingStopped(
                "train",
                f"stopped by the sweep's pruner at step {step}: validation loss {loss:.4f} is "
                "worse than the other trials' at this step",
            )

    start = time.monotonic()
    watching = watch_eval_loss(watch) if section.pruning() else contextlib.nullcontext()
    try:
        with watching:
            result = run_pipeline(
                recipe,
                root=Path(sweep.root),
                say=_say(f"[trial {trial.number}] ", say),
                link_version=False,
            )
    except (StageError, UserError) as exc:  # refused before any stage (a preflight check)
        trial.set_user_attr("seconds", round(time.monotonic() - start, 1))
        trial.set_user_attr("note", str(exc))
        say(f"[trial {trial.number}] failed: {exc}")
        raise TrialFailed("sweep", f"trial {trial.number}: {exc}") from None
    trial.set_user_attr("seconds", round(time.monotonic() - start, 1))
    trial.set_user_attr("run_dir", str(result.run_dir))
    summaries = {s.stage: s.summary for s in result.stages if s.summary}
    train = summaries.get("train") or {}
    evaluation = summaries.get("eval") or {}
    numbers = {
        "train_first_loss": train.get("first_loss"),
        "train_last_loss": train.get("last_loss"),
        "train_eval_loss": train.get("last_eval_loss"),
        "held_out_loss": (evaluation.get("loss") or {}).get("tuned"),
        "base_loss": (evaluation.get("loss") or {}).get("base"),
        "pass_rate": (evaluation.get("pass_rate") or {}).get("tuned"),
    }
    trial.set_user_attr("numbers", numbers)
    error = result.error
    if isinstance(error, TrainingStopped):
        trial.set_user_attr("note", error.message)
        say(f"[trial {trial.number}] pruned: {error.message}")
        raise optuna.TrialPruned(error.message)
    if error is not None and not isinstance(error, RunFailed):
        trial.set_user_attr("note", str(error))
        raise TrialFailed("sweep", f"trial {trial.number}: {error}")
    if isinstance(error, RunFailed):  # a missed gate: the evaluation finished, its numbers count
        trial.set_user_attr("note", f"gate missed: {error.failure.message}")
    value = metric_value(section.metric, summaries)
    if value is None:
        trial.set_user_attr("note", f"{section.metric} was not measured")
        raise TrialFailed("sweep", f"trial {trial.number}: {section.metric} was not measured")
    say(f"[trial {trial.number}] {section.metric} = {value:.6g}")
    return value


def work(sweep: Sweep, worker: int = 0, say: Callable[[str], None] = print) -> None:
    """Run trials until the sweep has its trials (in this process)."""
    if sweep.gpus:
        # Before anything imports torch: this worker sees one GPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = sweep.gpus[worker % len(sweep.gpus)]
    from runner.sweep.study import counted, open_study, optuna_module

    optuna = optuna_module()
    section = sweep.spec
    study = open_study(section, sweep.study_name, Path(sweep.folder), create=False)
    budget = trial_budget(section)
    waiting = optuna.trial.TrialState.WAITING
    while counted(study) < budget:
        if section.method == "grid" and not study.get_trials(deepcopy=False, states=(waiting,)):
            break
        study.optimize(
            lambda trial: run_trial(sweep, trial, say),
            n_trials=1,
            catch=(StageError, UserError, RecipeErrors),
        )


def _worker(sweep: Sweep, worker: int) -> None:
    work(sweep, worker)


def gpu_ids() -> list[str]:
    """The GPUs trials can be spread over (``CUDA_VISIBLE_DEVICES`` when set, else all)."""
    from runner.train.hardware import cuda_available

    if not cuda_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [g for g in visible.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class SweepResult:
    folder: Path
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    promoted: Any = None  # the PipelineResult of the winner's full run
    error: Exception | None = None


def run_sweep(
    path: str | Path,
    user_overrides: Sequence[str] = (),
    *,
    resume: bool = False,
    root: Path | None = None,
    say: Callable[[str], None] = print,
    laptop: bool = False,
) -> SweepResult:
    """Run (or ``resume``) the sweep of the recipe at ``path``; write its table and best.yaml.
    ``laptop`` tries every trial on this CPU (``--laptop``; the swept values still apply)."""
    from runner.pipeline import run_pipeline
    from runner.sweep.outputs import collect, write_outputs
    from runner.sweep.study import open_study, requeue_abandoned

    path = str(Path(path).resolve())
    recipe = load_recipe(path, list(user_overrides), laptop=laptop)
    if recipe.sweep is None:
        raise UserError(f"{path} has no `sweep:` section (see `recipe schema`, key sweep)")
    section = recipe.sweep
    check_values(path, user_overrides, section, laptop)
    root = _root(root)
    identity = sweep_identity(recipe, user_overrides)
    folder, new = find_folder(root, recipe, identity, resume)
    name = f"{recipe.name}-{folder.name}"
    sweep = Sweep(
        recipe_path=path,
        user_overrides=list(user_overrides),
        root=str(root),
        folder=str(folder),
        study_name=name,
        export_override=trial_exports(recipe),
        section=recipe.to_dict()["sweep"],
        gpus=gpu_ids() if section.parallel > 1 else [],
        laptop=laptop,
    )
    if new:
        (folder / SWEEP_FILE).write_text(
            json.dumps(
                {
                    "identity": identity,
                    "recipe_file": path,
                    "overrides": list(user_overrides),
                    "study": name,
                    "storage": section.storage or str(folder / "study.journal"),
                    "sweep": sweep.section,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                indent=2,
            )
            + "\n"
        )
    study = open_study(section, name, folder, create=new)
    if not new and (requeued := requeue_abandoned(study)):
        say(f"sweep: {requeued} trial(s) left running by the last session will run again")
    say(
        f"sweep {folder.name}: {trial_budget(section)} trials, {section.metric} "
        f"({section.goal()}), {section.parallel} at once"
    )

    # The data stage first, once: every trial whose swept keys it does not read reuses it.
    first = load_recipe(path, [*user_overrides, sweep.export_override], laptop=laptop)
    data = run_pipeline(
        first, until="data", root=root, say=_say("[data] ", say), link_version=False
    )
    if data.error is not None:
        raise data.error

    if section.parallel == 1:
        work(sweep, 0, say)
    else:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(section.parallel, mp_context=context) as pool:
            for future in [pool.submit(_worker, sweep, i) for i in range(section.parallel)]:
                future.result()

    study = open_study(section, name, folder, create=False)
    trials, best = collect(study, section)
    result = SweepResult(folder, trials, best)
    if best is not None and section.promote == "best":
        winner = load_recipe(path, [*user_overrides, *overrides(best["values"])], laptop=laptop)
        say(
            f"sweep: trial {best['number']} wins ({section.metric} = {best['value']:.6g}); "
            "running it with the recipe's exports"
        )
        result.promoted = run_pipeline(winner, root=root, say=_say("[best] ", say))
        result.error = result.promoted.error
    write_outputs(folder, path, user_overrides, section, trials, best, result.promoted, laptop)
    say(f"sweep: {folder / 'sweep.md'}")
    return result
