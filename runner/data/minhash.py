"""MinHash signatures and LSH indexes (datasketch), shared by near-dedupe and decontamination.

Signatures are computed in worker processes (the expensive part) and sent to the main process as
plain arrays; only the LSH index lives in the main process. A shingle is ``ngram`` consecutive
words (split at whitespace); datasketch hashes and permutes them.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np

# datasketch's default seed: signatures and the LeanMinHash rebuilt from them must agree.
SEED = 1


def shingles(text: str, ngram: int) -> set[bytes]:
    """The word ``ngram``-grams of ``text``; a text of at most ``ngram`` words is one shingle."""
    words = text.split()
    count = max(1, len(words) - ngram + 1)
    return {" ".join(words[i : i + ngram]).encode("utf-8") for i in range(count)}


def signature(text: str, num_perm: int = 128, ngram: int = 5) -> np.ndarray:
    """The MinHash hash values of ``text`` (one array, cheap to pickle)."""
    from datasketch import MinHash

    sketch = MinHash(num_perm=num_perm, seed=SEED)
    sketch.update_batch(list(shingles(text, ngram)))
    return sketch.hashvalues


@functools.cache
def _lean_kwargs() -> dict[str, Any]:
    from datasketch import LeanMinHash

    # datasketch >= 2.0 wants the scheme named when rebuilding from hash values.
    if "scheme" in inspect.signature(LeanMinHash.__init__).parameters:
        from datasketch import MinHash

        return {"scheme": MinHash(num_perm=2, seed=SEED).scheme}
    return {}


def as_minhash(values: np.ndarray) -> Any:
    """A datasketch LeanMinHash from hash values made by ``signature`` (a full MinHash would
    draw its permutations again for every example)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=SEED, hashvalues=values, **_lean_kwargs())


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The Jaccard similarity two MinHash signatures estimate: the share of equal hash values."""
    return float(np.count_nonzero(a == b)) / len(a)


class NearIndex:
    """An index answering "is there an indexed text with Jaccard >= threshold?".

    LSH (datasketch's ``MinHashLSH``) proposes candidates that share a band with the query; a
    band match is likely, not certain, for a pair above the threshold and possible for a pair
    below it. A candidate is a near duplicate only when the similarity its signature estimates
    with the query's reaches the threshold, so the index keeps every signature it was given.
    """

    def __init__(self, threshold: float, num_perm: int):
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.signatures: dict[str, np.ndarray] = {}
        self.rejected_candidates = 0  # band matches whose estimated Jaccard was below threshold

    @property
    def size(self) -> int:
        return len(self.signatures)

    def match(self, values: np.ndarray) -> tuple[str, float] | None:
        """``(key, estimated Jaccard)`` of the most similar indexed signature at or above the
        threshold, or None."""
        best: tuple[str, float] | None = None
        for key in self.lsh.query(as_minhash(values)):
            similarity = jaccard(values, self.signatures[key])
            if similarity < self.threshold:
                self.rejected_candidates += 1
            elif best is None or similarity > best[1]:
                best = (key, similarity)
        return best

    def add(self, key: str, values: np.ndarray) -> None:
        self.lsh.insert(key, as_minhash(values), check_duplication=False)
        self.signatures[key] = values
