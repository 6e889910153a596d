"""The run folder: ``runs/<name>/<short hash>/`` with one link per stage output.

Stage outputs live once in a content-addressed store, ``runs/<name>/stages/<stage>-<key>/``, and
each run folder links ``data/``, ``train/``, ``merged/``... to the entry of its key. A recipe that
changes only its export section gets a new run folder whose data and train links point at the
outputs already built. A stage writes into ``stages/.partial/<stage>-<key>/``, which is renamed
into place when it returns; the completion manifest is written after the rename, so an entry
without a manifest is unfinished and is never reused. Nothing inside an output is rewritten after
the rename: stages record their outputs relative to their own folder.

Runs of the same recipe may happen at the same time (two terminals, the job API): each stage key
has a lock (``stages/.locks/<stage>-<key>.lock``, an OS file lock that dies with its holder), so a
second run of the same stage waits for the first and then reuses its output.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from runner.run.context import Outcome, stage_log
from runner.run.stages import SPECS

MANIFEST = "stage.manifest.json"
LOCK = "run.lock.json"


def _tmp_name(path: Path) -> Path:
    """A sibling name no other process or thread writes (runs may happen at the same time)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = _tmp_name(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def relink(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (relative), replacing whatever was there."""
    rel = os.path.relpath(target, link.parent)
    if link.is_symlink() and os.readlink(link) == rel:
        return
    tmp = _tmp_name(link)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(rel)
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)  # a copied output folder; a plain file is replaced below
    os.replace(tmp, link)


class RunFolder:
    def __init__(self, runs_root: Path, recipe_name: str, run_hash: str):
        self.recipe_root = runs_root / recipe_name
        self.run_dir = self.recipe_root / run_hash
        self.store = self.recipe_root / "stages"

    def entry(self, stage: str, key: str) -> Path:
        return self.store / f"{stage}-{key[:12]}"

    def partial(self, stage: str, key: str) -> Path:
        return self.store / ".partial" / f"{stage}-{key[:12]}"

    def lock(self, stage: str, key: str) -> FileLock:
        """The lock held while a stage with this key runs (waited on by a second run)."""
        locks = self.store / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{stage}-{key[:12]}.lock"))

    def manifest(self, stage: str, key: str) -> dict[str, Any] | None:
        """The completion manifest of a finished stage with this key, or None."""
        path = self.entry(stage, key) / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("key") == key else None

    def outcome(self, stage: str, key: str) -> Outcome | None:
        manifest = self.manifest(stage, key)
        return (
            Outcome.from_json(manifest["outcome"]) if manifest and "outcome" in manifest else None
        )

    def create(self, lock: dict[str, Any]) -> None:
        """Make the run folder, write its lock file and point ``latest`` at it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        write_json_atomic(self.run_dir / LOCK, lock)
        relink(self.recipe_root / "latest", self.run_dir)

    def start(self, stage: str, key: str, *, keep_partial: bool) -> Path:
        """A folder for the stage to write into; kept from an interrupted attempt if asked."""
        partial = self.partial(stage, key)
        if partial.exists() and not keep_partial:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        # While the stage runs (and if it fails), the run folder's log link shows its log.
        relink(self.run_dir / "logs" / f"{stage}.log", stage_log(partial, stage))
        return partial

    def finish(self, stage: str, key: str, outcome: Outcome, seconds: float) -> Path:
        """Rename the partial output into place, then write the manifest, then link it."""
        final = self.entry(stage, key)
        partial = self.partial(stage, key)
        if final.exists():  # an unfinished or forced-over entry
            shutil.rmtree(final)
        os.replace(partial, final)
        manifest = {
            "stage": stage,
            "key": key,
            "seconds": round(seconds, 3),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "outcome": outcome.to_json(),
        }
        write_json_atomic(final / MANIFEST, manifest)
        self.link(stage, key)
        return final

    def link(self, stage: str, key: str) -> None:
        entry = self.entry(stage, key)
        relink(self.run_dir / SPECS[stage].folder, entry)
        if stage_log(entry, stage).exists():  # also when this run folder reuses the stage
            relink(self.run_dir / "logs" / f"{stage}.log", stage_log(entry, stage))
        for name in SPECS[stage].run_files:
            if (entry / name).exists():
                relink(self.run_dir / name, entry / name)

    def invalidate(self, stage: str, key: str) -> None:
        """Forget a finished entry (``--force``): its manifest goes first."""
        manifest = self.entry(stage, key) / MANIFEST
        if manifest.exists():
            manifest.unlink()
