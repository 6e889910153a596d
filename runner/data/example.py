"""The one record type that flows through the data stages."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One training example, or a raw document on its way to becoming examples.

    Sources yield examples; extractors turn raw documents (``text`` set, ``messages`` empty) into
    chat examples; filters keep, alter or drop them; split and format consume them.

    ``messages`` is a list of ``{"role": "system"|"user"|"assistant", "content": str}``.
    ``metadata`` carries everything else: ``source_file``, ``line``, ``language``, ``path``, and
    any fields the recipe copies from the input (``version``, ``difficulty``...).
    """

    id: str
    source: str
    messages: list[dict[str, str]] = field(default_factory=list)
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_raw(self) -> bool:
        return not self.messages

    def content(self, which: str = "all") -> str:
        """Text of the example: ``all`` turns, only the ``response`` or only the ``prompt``."""
        if self.is_raw:
            return self.text
        if which == "response":
            turns = [m for m in self.messages if m["role"] == "assistant"]
        elif which == "prompt":
            turns = [m for m in self.messages if m["role"] != "assistant"]
        else:
            turns = self.messages
        return "\n".join(m["content"] for m in turns)

    def to_record(self) -> dict[str, Any]:
        """The canonical JSONL row: ``{"id", "messages", "meta"}``."""
        meta = {"source": self.source, **self.metadata}
        row: dict[str, Any] = {"id": self.id, "messages": self.messages, "meta": meta}
        if self.is_raw:
            row["text"] = self.text
        return row


def stable_id(*parts: Any) -> str:
    """A short content-derived id, stable across runs."""
    digest = hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:16]
