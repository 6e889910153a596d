"""Registries of the operations a recipe names by `type:` (sources, filters, exports, checks...).

Each operation registers itself under the name users write in YAML, so that the name in a recipe
and the class that handles it can be found from each other by a text search.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return " did you mean 'x'?" for the closest known name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class Registry:
    """A name -> class mapping for one kind of operation (e.g. "source", "filter")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def decorate(obj: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            obj.type_name = name
            return obj

        return decorate

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise KeyError(
                f"'{name}' is not a known {self.kind}{did_you_mean(name, self.names())} "
                f"(known: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
