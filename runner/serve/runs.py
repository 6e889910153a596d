"""The run folders under the server's runs folder, as ``/v1/runs`` shows them, and the files in
them the page links to (reports, Modelfiles, GGUFs), never anything outside."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runner.run.folder import LOCK, MANIFEST
from runner.run.stages import SPECS

# Files of a run the page offers as links, when the run has them.
LINKED = ("eval/report.html", "eval/report.md", "data/report.md", "ollama/Modelfile")


def recipe_names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _recipe_root(root: Path, name: str) -> Path | None:
    if not name or name.startswith(".") or "/" in name or name not in recipe_names(root):
        return None
    return root / name


def url(name: str, rel: str) -> str:
    return f"/v1/runs/{name}/files/{rel}"


def run_summary(root: Path, name: str, run_dir: Path) -> dict[str, Any]:
    """One run folder: its stages (finished or not, seconds, summary) and its files."""
    lock = json.loads((run_dir / LOCK).read_text(encoding="utf-8"))
    stages = {}
    for stage in lock.get("stages", {}):
        manifest_path = run_dir / SPECS[stage].folder / MANIFEST if stage in SPECS else None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            stages[stage] = {"status": "not finished"}
            continue
        outcome = manifest.get("outcome") or {}
        stages[stage] = {
            "status": "gate missed" if outcome.get("failure") else "finished",
            "seconds": manifest.get("seconds"),
            "finished": manifest.get("finished"),
            "summary": outcome.get("summary"),
        }
    files = {rel: url(name, f"{run_dir.name}/{rel}") for rel in LINKED if (run_dir / rel).is_file()}
    return {
        "id": run_dir.name,
        "recipe": name,
        "path": str(run_dir),
        "created": os.stat(run_dir / LOCK).st_mtime,
        "stages": stages,
        "files": files,
    }


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Each recipe that has runs, with its newest run."""
    out = []
    for name in recipe_names(root):
        runs = recipe_runs(root, name)
        if runs and runs["runs"]:
            latest = runs["runs"][0]
            out.append({"name": name, "runs": len(runs["runs"]), "latest": latest})
    return out


def recipe_runs(root: Path, name: str) -> dict[str, Any] | None:
    """Every run folder of one recipe, newest first; None if the recipe has none."""
    base = _recipe_root(root, name)
    if base is None:
        return None
    runs = []
    for run_dir in base.iterdir():
        if run_dir.is_dir() and not run_dir.is_symlink() and (run_dir / LOCK).is_file():
            try:
                runs.append(run_summary(root, name, run_dir))
            except (OSError, ValueError):
                continue
    runs.sort(key=lambda r: r["created"], reverse=True)
    latest = base / "latest"
    return {
        "name": name,
        "latest": os.readlink(latest).rstrip("/") if latest.is_symlink() else None,
        "runs": runs,
    }


def run_file(root: Path, name: str, rel: str) -> Path | None:
    """A file inside the recipe's runs folder (links followed, but only to inside it)."""
    base = _recipe_root(root, name)
    if base is None or ".." in Path(rel).parts:
        return None
    base = base.resolve()
    path = (base / rel).resolve()
    return path if path.is_file() and path.is_relative_to(base) else None
