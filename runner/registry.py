"""Registries of the operations a recipe names by `type:` (sources, filters, exports, checks...).

Each operation is a class with a nested ``Options`` model (``runner.recipe.fields.Operation``)
whose ``type: Literal["name"]`` is the name users write in YAML. Registering the class makes the
name, the options (and so the JSON Schema and the docs) and the code that handles it one thing.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Union


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return "; did you mean 'x'?" for the closest known name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class Registry:
    """A name -> class mapping for one kind of operation (``kind`` is how messages call it)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, cls: Any) -> Any:
        """Class decorator for an operation whose nested ``Options`` names its type
        (``type: Literal["regex"]``), or for an options model that is all there is to it (an
        export target, whose work is a stage)."""
        options = getattr(cls, "Options", cls)
        name = options.type_name()
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = cls
        if options is not cls:
            cls.type_name = name
            # A nested `Options` is named after its operation (`RegexFilterOptions`), in
            # messages and in the JSON Schema's definitions.
            options.source_qualname = options.__qualname__  # where its docs are (schema.py)
            options.__name__ = options.__qualname__ = f"{cls.__name__}Options"
        options.kind = self.kind
        return cls

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names())
            raise KeyError(
                f"'{name}' is not a known {self.kind}{did_you_mean(name, self.names())} "
                f"(known: {known})"
            ) from None

    def names(self) -> list[str]:
        """The names users can write (an ``internal`` operation is added by the runner itself,
        such as the replay source ``continue_from.replay`` adds, and is not one of them)."""
        return [name for name, cls in self._entries.items() if not getattr(cls, "internal", False)]

    def options(self) -> list[type]:
        return [
            getattr(self._entries[name], "Options", self._entries[name]) for name in self.names()
        ]

    def union(self) -> Any:
        """The options of every registered type as one `type:`-discriminated union."""
        from pydantic import Field

        members = tuple(self.options())
        return Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007

    def __contains__(self, name: str) -> bool:
        return name in self._entries
