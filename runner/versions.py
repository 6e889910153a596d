"""Installed versions of the tools a run depends on, read from package metadata (no import)."""

from __future__ import annotations

import sys
from functools import cache
from importlib import metadata


@cache
def version_of(dist: str) -> str:
    """The installed version of a distribution, or ``absent``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def versions(dists: tuple[str, ...]) -> dict[str, str]:
    """Python's version and each distribution's."""
    return {"python": sys.version.split()[0], **{d: version_of(d) for d in dists}}
