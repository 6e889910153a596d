"""The resolved, immutable recipe that every stage receives after validation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a recipe file and line, or a ``--set`` override."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


def freeze(value: Any) -> Any:
    """Deep-freeze plain YAML data: mappings become read-only, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn frozen recipe data back into plain dicts and lists (for JSON/YAML output)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def content_hash(value: Any) -> str:
    """Hash of JSON-able data, independent of key order."""
    text = json.dumps(thaw(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: defaults filled in, ``extends`` merged, paths absolute.

    ``config`` is read-only; stages read it and never re-check raw YAML.
    ``origins`` maps dotted key paths (``train.learning_rate``, ``sources.0.path``) to where
    they were set, for ``recipe explain`` and for error messages found after loading.
    """

    name: str
    path: Path
    config: Mapping[str, Any]
    origins: Mapping[str, Origin] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()

    def __getitem__(self, section: str) -> Any:
        return self.config[section]

    def get(self, dotted: str, default: Any = None) -> Any:
        """Value at a dotted path (``train.seq_len``, ``export.0.type``), or ``default``."""
        node: Any = self.config
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, tuple) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    def to_dict(self) -> dict[str, Any]:
        return thaw(self.config)

    def section_hash(self, *sections: str) -> str:
        """Hash of whole resolved sections: a stage key never hand-picks fields."""
        return content_hash({s: self.config.get(s) for s in sections})

    def exports(self, type_name: str) -> list[Mapping[str, Any]]:
        """The export targets of one type, in recipe order."""
        return [t for t in self.config.get("export", ()) if t["type"] == type_name]
