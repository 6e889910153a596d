"""``lineage.json``: where a run comes from, so that versions of a model can be traced and compared.

Written into every run folder when the run starts and again when it stops: the recipe (name,
version, file, hash), the base model and revision, the key of every stage, the content hash of
the files a stage declares as the run's data (``StageSpec.lineage_files``: the splits), and, for a
run that continues from another, the parent (its folder, run, version, recipe hash), the mode and
the replay share.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import UserError
from runner.run.folder import RunFolder, write_json_atomic
from runner.run.stages import SPECS

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

LINEAGE = "lineage.json"


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_hashes(folder: RunFolder, keys: dict[str, str]) -> dict[str, str]:
    """sha256 of each finished stage's lineage files (``data/train.jsonl``...)."""
    hashes = {}
    for name, key in keys.items():
        spec = SPECS[name]
        if not spec.lineage_files or folder.manifest(name, key) is None:
            continue
        entry = folder.entry(name, key)
        for file in spec.lineage_files:
            if (entry / file).is_file():
                hashes[f"{spec.folder}/{file}"] = _file_hash(entry / file)
    return hashes


def parent_of(recipe: Recipe) -> dict[str, Any] | None:
    section = recipe.continue_from
    if section is None:
        return None
    from runner.train.continue_from import find_parent

    try:
        described = find_parent(section.run).describe()
    except UserError as exc:
        described = {"path": section.run, "error": str(exc)}
    return {
        **described,
        "mode": section.mode,
        "replay": section.replay.model_dump() if section.replay else None,
    }


def write_lineage(recipe: Recipe, folder: RunFolder, keys: dict[str, str]) -> dict[str, Any]:
    """Write (or refresh) the run folder's ``lineage.json``; returns what it wrote."""
    path = folder.run_dir / LINEAGE
    created = None
    if path.is_file():
        try:
            created = json.loads(path.read_text()).get("created")
        except ValueError:
            created = None
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data = {
        "name": recipe.name,
        "version": recipe.version,
        "run": folder.run_dir.name,
        "created": created or now,
        "updated": now,
        "recipe_file": str(recipe.path),
        "recipe_hash": recipe.hash(),
        "base_model": {"ref": recipe.model.base, "revision": recipe.model.revision},
        "stages": dict(keys),
        "data": data_hashes(folder, keys),
        "parent": parent_of(recipe),
    }
    write_json_atomic(path, data)
    return data


def read_lineage(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / LINEAGE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
