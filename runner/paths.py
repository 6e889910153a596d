"""Paths a user gives us (in a recipe, on the command line, over HTTP): checked before anything
calls ``stat`` on them, and looked at without ever raising."""

from __future__ import annotations

import os
from pathlib import Path

# File systems refuse longer names (PATH_MAX 4096, NAME_MAX 255 on Linux); a recipe that names one
# gets an error at validation instead of an OSError from the first `stat`.
MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255


def check_path_text(value: str) -> str:
    """``value``, or ValueError saying why no file system would accept it."""
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL byte")
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"a path of {len(value)} characters is longer than file systems allow")
    for part in value.split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise ValueError(
                f"the name {part[:40]!r}... is longer than file systems allow "
                f"({MAX_NAME_BYTES} bytes)"
            )
    return value


def looks_local(ref: str) -> bool:
    """A reference that names a local path rather than a hub id or a built-in name."""
    return ref.startswith((".", "/", "~"))


def names_template_file(ref: str) -> bool:
    """`prompt.template` names a file (rather than a template shipped in templates/)."""
    return ref.endswith((".jinja", ".j2")) or "/" in ref


def display_path(path: Path | str) -> str:
    """A path relative to the working directory when it is below it, as users typed it."""
    path = Path(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if path.is_absolute() and not rel.startswith("..") else str(path)


def path_problem(path: str | Path) -> str | None:
    """Why a path cannot be read (missing, unusable name), without ever raising."""
    try:
        if not Path(path).exists():
            return f"{display_path(path)} does not exist"
    except (OSError, ValueError) as exc:
        return f"{display_path(path)} cannot be used: {exc}"
    return None
