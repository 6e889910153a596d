"""`exact_dedupe` and `near_dedupe` (MinHash LSH)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from runner.data.example import Example
from runner.data.filters.base import Filter
from runner.data.minhash import NearIndex, signature
from runner.data.outcome import Verdict, drop
from runner.data.registries import FILTERS

_SPACE = re.compile(r"\s+")


def normalised_hash(text: str) -> bytes:
    """Hash of the text with runs of whitespace collapsed (so re-indented copies match)."""
    return hashlib.blake2b(_SPACE.sub(" ", text).strip().encode("utf-8"), digest_size=12).digest()


@FILTERS.register("exact_dedupe")
class ExactDedupe(Filter):
    """Drops an example whose whitespace-normalised text (all turns) was already kept."""

    stateful = True

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.seen: dict[bytes, str] = {}

    def key(self, example: Example) -> bytes:
        return normalised_hash(example.content("all"))

    def check(self, key: bytes, example: Example) -> Verdict | None:
        first = self.seen.get(key)
        if first is not None:
            return drop("exact duplicate", f"same text as {first}")
        self.seen[key] = example.id
        return None

    def stats(self) -> dict[str, Any]:
        return {"index_size": len(self.seen)}


@FILTERS.register("near_dedupe")
class NearDedupe(Filter):
    """Drops an example whose MinHash (word ``ngram`` shingles) matches a kept one at Jaccard
    ``threshold`` or more, via datasketch's LSH."""

    stateful = True

    def __init__(self, spec, tokens=None):
        super().__init__(spec, tokens)
        self.threshold = float(spec.get("threshold", 0.85))
        self.num_perm = int(spec.get("num_perm", 128))
        self.ngram = int(spec.get("ngram", 5))
        self.index: NearIndex | None = None

    def key(self, example: Example) -> Any:
        return signature(example.content("all"), self.num_perm, self.ngram)

    def check(self, key: Any, example: Example) -> Verdict | None:
        if self.index is None:
            self.index = NearIndex(self.threshold, self.num_perm)
        match = self.index.match(key)
        if match is not None:
            return drop("near duplicate", f"Jaccard >= {self.threshold} with {match}")
        self.index.add(example.id, key)
        return None

    def stats(self) -> dict[str, Any]:
        return {"index_size": self.index.size if self.index else 0}
