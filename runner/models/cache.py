"""The user's cache folder and a build-once helper for expensive, deterministic artifacts.

Tiny base models and their tokenizers take from seconds to minutes to build. They are built
once per content key, into a temporary folder that is renamed into place, under a file lock so
that two test workers (pytest-xdist) or two runs never build the same thing twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

# The file written last inside a finished build: its presence means the build completed.
DONE_MARKER = ".complete"


def cache_root() -> Path:
    """``$RECIPE_RUNNER_CACHE``, else ``$XDG_CACHE_HOME/recipe-runner``, else ``~/.cache/recipe-runner``."""
    if os.environ.get("RECIPE_RUNNER_CACHE"):
        return Path(os.environ["RECIPE_RUNNER_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "recipe-runner"


def build_once(kind: str, name: str, key: str, build: Callable[[Path], None]) -> Path:
    """Return ``<cache>/<kind>/<name>-<key>``, calling ``build(tmp_dir)`` first if it is missing.

    ``build`` writes into an empty temporary folder next to the target; the folder is renamed
    into place only when ``build`` returns, so an interrupted build leaves nothing half-made.
    """
    from filelock import FileLock

    parent = cache_root() / kind
    target = parent / f"{name}-{key[:16]}"
    if (target / DONE_MARKER).exists():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(parent / f".{name}-{key[:16]}.lock")):
        if (target / DONE_MARKER).exists():  # another process built it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
        try:
            build(tmp)
            (tmp / DONE_MARKER).write_text(key + "\n")
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
            if target.exists():  # a leftover without its marker: an earlier build was cut off
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
