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


def outside_roots(
    written: str, resolved: Path, roots: tuple[Path, ...], *, refuse_parent: bool
) -> str | None:
    """Why a path from someone else (a recipe sent to the job API) may not be read, or None.

    ``resolved`` is followed through every symlink before it is compared, so a link inside a
    root that points elsewhere is refused; ``..`` is refused as written when ``refuse_parent``.
    ``roots`` are resolved folders.
    """
    if refuse_parent and ".." in Path(written).parts:
        return f"{written!r}: '..' is not allowed in a path sent to the job API"
    try:
        real = Path(os.path.realpath(resolved))
    except (OSError, ValueError) as exc:
        return f"{written!r} cannot be used: {exc}"
    if any(real == root or real.is_relative_to(root) for root in roots):
        return None
    shown = ", ".join(str(root) for root in roots) or "none"
    return f"{written!r} is outside the server's data folders (--data-root: {shown})"
