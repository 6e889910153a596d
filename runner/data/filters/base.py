"""The filter protocol.

A stateless filter answers from the example alone and runs in worker processes. A stateful
filter (dedupe) is split in two: ``key(example)`` runs in the worker (the expensive part: a hash,
a MinHash) and ``check(key, example)`` runs in the main process against the shared index, in
input order, so results do not depend on how work was spread over processes.
"""

from __future__ import annotations

from typing import Any

from runner.data.example import Example
from runner.data.outcome import Verdict
from runner.data.tokenizer import TokenCounter
from runner.recipe.fields import Operation


class Filter:
    stateful = False
    Options = Operation

    def __init__(self, options: Any, tokens: TokenCounter | None = None):
        self.options = options
        self.type = options.type
        self.tokens = tokens

    def __call__(self, example: Example) -> Verdict | None:
        """Stateless filters: None to keep, or a drop/alter verdict."""
        raise NotImplementedError

    def key(self, example: Example) -> Any:
        """Stateful filters: what ``check`` needs, computed in the worker."""
        raise NotImplementedError

    def check(self, key: Any, example: Example) -> Verdict | None:
        """Stateful filters: decide against the shared state (main process)."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Extra numbers for the report (index size...)."""
        return {}


def text_of(example: Example, field: str) -> str:
    """The text a filter measures: ``all`` turns, the ``response`` or the ``prompt``."""
    return example.content(field)
