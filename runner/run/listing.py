"""The runs of a recipe as ``recipe runs`` lists them: version, date, status and key numbers.

Everything is read from the run folders: ``run.lock.json`` (the stages and their keys),
``lineage.json`` (version, parent, dates) and each stage's completion manifest (its outcome); a
stage whose lock is held by a live process is running.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.run.folder import LOCK, RunFolder
from runner.run.lineage import read_lineage
from runner.run.stages import SPECS


@dataclass
class RunInfo:
    recipe: str
    run: str
    path: Path
    versions: list[str] = field(default_factory=list)
    latest: bool = False
    created: str = ""
    status: str = ""
    done: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    train_loss: float | None = None
    held_out_loss: float | None = None
    pass_rate: float | None = None
    parent: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _running(folder: RunFolder, stage: str, key: str) -> bool:
    """Whether a live process holds the stage's lock (the lock dies with its holder)."""
    from filelock import Timeout

    path = folder.store / ".locks" / f"{stage}-{key[:12]}.lock"
    if not path.exists():
        return False
    lock = folder.lock(stage, key)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def run_info(root: Path, recipe: str, run_dir: Path) -> RunInfo | None:
    """What one run folder holds; None when it is not a run folder."""
    lock = _read_json(run_dir / LOCK)
    if not lock:
        return None
    lineage = read_lineage(run_dir)
    folder = RunFolder(root, recipe, run_dir.name)
    recorded: dict[str, str] = lock.get("stages") or {}
    # The lock file's keys are sorted; the stages run in the table's order.
    stages = {s: recorded[s] for s in SPECS if s in recorded}
    info = RunInfo(recipe, run_dir.name, run_dir, stages=list(stages))
    info.created = lineage.get("created") or time.strftime(
        "%Y-%m-%dT%H:%M:%S%z", time.localtime((run_dir / LOCK).stat().st_mtime)
    )
    summaries: dict[str, dict[str, Any]] = {}
    failure = None
    for stage, key in stages.items():
        manifest = folder.manifest(stage, key)
        if manifest is None:
            continue
        info.done.append(stage)
        outcome = manifest.get("outcome") or {}
        summaries[stage] = outcome.get("summary") or {}
        failure = failure or outcome.get("failure")
    missing = [s for s in stages if s not in info.done]
    if failure:
        info.status = f"{failure.get('kind', 'failed')}"
    elif not missing:
        info.status = "done"
    elif _running(folder, missing[0], stages[missing[0]]):
        info.status = f"running {missing[0]}"
    else:
        info.status = f"stopped at {missing[0]}"
    info.train_loss = (summaries.get("train") or {}).get("last_loss")
    evaluation = summaries.get("eval") or {}
    info.held_out_loss = (evaluation.get("loss") or {}).get("tuned")
    info.pass_rate = (evaluation.get("pass_rate") or {}).get("tuned")
    parent = lineage.get("parent")
    if isinstance(parent, dict):
        info.parent = " ".join(
            str(x) for x in (parent.get("name"), parent.get("version") or parent.get("run")) if x
        )
    return info


def list_runs(root: Path, name: str | None = None) -> list[RunInfo]:
    """Every run under ``root`` (of recipe ``name`` only, when given), oldest first."""
    recipes = [root / name] if name else sorted(p for p in root.iterdir() if p.is_dir())
    runs: list[RunInfo] = []
    for recipe_dir in recipes:
        if not recipe_dir.is_dir():
            continue
        links: dict[str, list[str]] = {}
        for entry in recipe_dir.iterdir():
            if entry.is_symlink() and (entry / LOCK).is_file():
                links.setdefault(os.path.realpath(entry), []).append(entry.name)
        for run_dir in sorted(recipe_dir.iterdir()):
            if run_dir.is_symlink() or not run_dir.is_dir():
                continue
            info = run_info(root, recipe_dir.name, run_dir)
            if info is None:
                continue
            named = links.get(os.path.realpath(run_dir), [])
            info.latest = "latest" in named
            info.versions = sorted(n for n in named if n != "latest")
            runs.append(info)
    return sorted(runs, key=lambda r: (r.recipe, r.created, r.run))
