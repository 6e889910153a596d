"""Content hashes: of JSON-able data, and of the files a recipe reads (cached by size and mtime,
so a no-op re-run is fast).

Stage keys are built from these hashes, never from file names or config fields alone: a stale
cache reused after the data changed is a classic failure (axolotl-ai-cloud/axolotl#1265).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def content_hash(value: Any) -> str:
    """sha256 of JSON-able data, independent of key order."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# Folders that are never part of a source's content.
SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules", ".mypy_cache", ".pytest_cache"}


class HashCache:
    """sha256 of files keyed by absolute path, reused while size and mtime are unchanged."""

    def __init__(self, path: Path | None):
        self.path = path
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                self._entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self._entries = {}

    def file_hash(self, file: Path) -> str:
        st = file.stat()
        key = str(file)
        hit = self._entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = hashlib.sha256()
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        value = digest.hexdigest()
        self._entries[key] = [st.st_size, st.st_mtime_ns, value]
        self._dirty = True
        return value

    def path_hash(self, path: Path) -> str:
        """Hash of a file, or of every file under a folder (relative names included)."""
        if path.is_file():
            return self.file_hash(path)
        digest = hashlib.sha256()
        head = git_head(path)
        if head is not None:  # a git_history source reads what the files alone do not show
            digest.update(f"git HEAD {head}\n".encode())
        for file in sorted(_walk(path)):
            digest.update(f"{file.relative_to(path).as_posix()}\0{self.file_hash(file)}\n".encode())
        return digest.hexdigest()

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Runs of one recipe may save at once: each writes its own file, the last rename wins.
        tmp = self.path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(self._entries))
        os.replace(tmp, self.path)
        self._dirty = False


def git_head(folder: Path) -> str | None:
    """The commit the HEAD of the git work tree at ``folder`` names (read from ``.git``
    without running git), or None when ``folder`` is not the top of a work tree."""
    git = folder / ".git"
    try:
        if git.is_file():  # a linked work tree: "gitdir: <path>"
            text = git.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir:"):
                return None
            git = (folder / text.removeprefix("gitdir:").strip()).resolve()
        if not (git / "HEAD").is_file():
            return None
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return head  # detached
        ref = head.removeprefix("ref: ")
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                return (base / ref).read_text(encoding="utf-8").strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
        return head  # a branch without commits yet
    except (OSError, UnicodeDecodeError):
        return None


def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            yield Path(dirpath) / name


def input_paths(value: Any) -> list[Path]:
    """Every existing absolute path named anywhere in a piece of resolved recipe data.

    The loader makes every ``format: path`` value absolute, so walking the whole section finds
    every file it reads without a hand-kept list of which keys are paths.
    """
    found: list[Path] = []
    if isinstance(value, Mapping):
        for item in value.values():
            found.extend(input_paths(item))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(input_paths(item))
    elif isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        path = Path(value)
        if path.exists():
            found.append(path)
    return found
