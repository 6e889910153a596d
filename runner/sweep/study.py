"""The Optuna side of a sweep: the study's storage, sampler and pruner, and a trial's values.

Storage is a journal file in the sweep's folder (Optuna's ``JournalFileBackend``: no server,
several processes append to it under a file lock), or an RDB URL (``sweep.storage``) that a
team's machines share. Grids are enqueued in the written order, so trial 0 is the first value of
every list; ``random`` and ``tpe`` draw from the lists and ranges with the sweep's seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.sweep.section import (
    PAIRED,
    IntRange,
    LogUniform,
    SweepSection,
    Uniform,
    grid,
    trial_budget,
)

JOURNAL = "study.journal"
SCALARS = (str, int, float, bool, type(None))


def optuna_module() -> Any:
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def storage(url: str | None, folder: Path) -> Any:
    """The study's storage: the RDB at ``url``, else a journal file in ``folder``."""
    optuna = optuna_module()
    if url:
        return optuna.storages.RDBStorage(url)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))


def sampler(section: SweepSection) -> Any:
    optuna = optuna_module()
    if section.method == "tpe":
        return optuna.samplers.TPESampler(seed=section.seed)
    # Grid trials are enqueued: the sampler is never asked for them.
    return optuna.samplers.RandomSampler(seed=section.seed)


def pruner(section: SweepSection) -> Any:
    optuna = optuna_module()
    settings = section.pruning()
    if settings is None:
        return optuna.pruners.NopPruner()
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, settings.warmup_steps))
    if settings.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            settings.percentile,
            n_startup_trials=settings.startup_trials,
            n_warmup_steps=settings.warmup_steps,
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_steps
    )


def open_study(section: SweepSection, name: str, folder: Path, *, create: bool) -> Any:
    """Create (or load) the study; a new grid study gets its trials enqueued."""
    optuna = optuna_module()
    store = storage(section.storage, folder)
    study = optuna.create_study(
        study_name=name,
        storage=store,
        direction=section.goal(),
        sampler=sampler(section),
        pruner=pruner(section),
        load_if_exists=not create,
    )
    if create and section.method == "grid":
        for values in list(grid(section))[: trial_budget(section)]:
            study.enqueue_trial(as_params(section, values))
    return study


def _choices(space: tuple[Any, ...]) -> list[Any]:
    """Optuna's categorical choices: the values themselves when they are scalars, else their
    positions (a list of target modules is not a valid choice)."""
    if all(isinstance(v, SCALARS) for v in space):
        return list(space)
    return list(range(len(space)))


def as_params(section: SweepSection, values: Mapping[str, Any]) -> dict[str, Any]:
    """A grid combination as the Optuna parameters ``suggest`` asks for."""
    params = {}
    for key, value in values.items():
        space = section.params.get(key)
        if isinstance(space, tuple) and _choices(space) != list(space):
            value = space.index(value)
        params[key] = value
    return params


def suggest(trial: Any, section: SweepSection) -> dict[str, Any]:
    """The trial's values of the swept keys (and the index of its paired choice)."""
    chosen: dict[str, Any] = {}
    for key, space in section.params.items():
        if isinstance(space, Uniform):
            chosen[key] = trial.suggest_float(key, *space.uniform)
        elif isinstance(space, LogUniform):
            chosen[key] = trial.suggest_float(key, *space.log_uniform, log=True)
        elif isinstance(space, IntRange):
            chosen[key] = trial.suggest_int(key, *space.int_)
        else:
            choices = _choices(space)
            picked = trial.suggest_categorical(key, choices)
            chosen[key] = picked if choices == list(space) else space[picked]
    if section.paired:
        chosen[PAIRED] = trial.suggest_categorical(PAIRED, list(range(len(section.paired))))
    return chosen


def counted(study: Any) -> int:
    """Trials that count against ``max_trials``: finished ones, and ones running now."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (states.COMPLETE, states.PRUNED, states.RUNNING)
        or (t.state == states.FAIL and not t.user_attrs.get("abandoned"))
    )


def requeue_abandoned(study: Any) -> int:
    """Trials left running by a sweep that was killed: marked failed (``abandoned``) and enqueued
    again with the same values, so ``--resume`` runs them (their finished stages are cached, a
    training resumes from its checkpoint). Returns how many."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == states.RUNNING]
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, "abandoned", True)
        study._storage.set_trial_state_values(trial._trial_id, states.FAIL)
        study.enqueue_trial(dict(trial.params))
    return len(stale)
