"""MinHash signatures (datasketch) and LSH indexes, shared by near-dedupe and decontamination.

Signatures are computed in worker processes (the expensive part) and sent to the main process as
plain arrays; only the LSH index lives in the main process. A shingle is ``ngram`` consecutive
words (split at whitespace), hashed to 32 bits by xxh32; datasketch permutes the hash values.
Signatures live for one run (the near-dedupe index, ``signatures.bin`` for decontamination):
the hash function only has to be deterministic across processes, never Python's ``hash()``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

# datasketch's default seed: the permutations every process draws for its signatures.
SEED = 1


def shingles(text: str, ngram: int) -> list[bytes]:
    """The word ``ngram``-grams of ``text`` in order, repeats included; a text of at most
    ``ngram`` words is one shingle.

    A MinHash keeps each permutation's least hash value, which a repeat cannot change: so
    repeats are hashed again rather than removed (building a set of them cost more: signatures
    0.47 -> 0.41 CPU s for a quarter of the bench corpus)."""
    words = text.split()
    if len(words) <= ngram:
        return [" ".join(words).encode("utf-8")]
    grams = zip(*(words[i:] for i in range(ngram)), strict=False)
    return list(map(str.encode, map(" ".join, grams)))


@functools.cache
def _scheme() -> dict[str, Any]:
    """datasketch >= 2.0 wants its permutation scheme named when a MinHash is built from
    permutations or hash values; older versions have one scheme and no such argument."""
    from datasketch import MinHash

    scheme = getattr(MinHash(num_perm=2, seed=SEED), "scheme", None)
    return {} if scheme is None else {"scheme": scheme}


@functools.cache
def _permutations(num_perm: int) -> Any:
    """The permutations of ``SEED``, drawn once per process (datasketch draws them again for
    every MinHash it builds)."""
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=SEED).permutations


def signature(text: str, num_perm: int = 128, ngram: int = 5) -> np.ndarray:
    """The MinHash hash values of ``text`` (one array, cheap to pickle).

    xxh32 rather than datasketch's default (sha1 per shingle, through ``struct``), and the
    permutations drawn once: 0.8 s instead of 2.2 s for 14 MB of the bench corpus's examples
    (a quarter of them; MinHash was a fifth of the workers' CPU time).
    """
    from datasketch import MinHash
    from xxhash import xxh32_intdigest

    sketch = MinHash(
        num_perm=num_perm,
        seed=SEED,
        hashfunc=xxh32_intdigest,
        permutations=_permutations(num_perm),
        **_scheme(),
    )
    sketch.update_batch(shingles(text, ngram))
    return sketch.hashvalues


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The Jaccard similarity two MinHash signatures estimate: the share of equal hash values."""
    return float(np.count_nonzero(a == b)) / len(a)


class NearIndex:
    """An index answering "is there an indexed text with Jaccard >= threshold?".

    LSH proposes candidates that share a band (``rows`` consecutive hash values) with the
    query; a band match is likely, not certain, for a pair above the threshold and possible
    for a pair below it. A candidate is a near duplicate only when the similarity its signature
    estimates with the query's reaches the threshold, so the index keeps every signature it was
    given.

    The bands are datasketch's ``MinHashLSH`` layout for the threshold (its choice of bands and
    rows), kept here as one dict per band from the band's bytes to the keys holding it: the
    same candidates as ``MinHashLSH.query``, without building a ``LeanMinHash`` and hashing
    through datasketch's storage layer for every example (the main process's near-dedupe and
    decontamination decisions took about 0.9 CPU s of the bench corpus's run that way).
    """

    def __init__(self, threshold: float, num_perm: int):
        from datasketch import MinHashLSH

        self.threshold = threshold
        layout = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.rows = layout.r
        self.bands = [(i * layout.r, (i + 1) * layout.r) for i in range(layout.b)]
        self.buckets: list[dict[bytes, list[str]]] = [{} for _ in self.bands]
        self.signatures: dict[str, np.ndarray] = {}
        self.order: dict[str, int] = {}  # when each key was added: ties go to the first
        self.rejected_candidates = 0  # band matches whose estimated Jaccard was below threshold

    @property
    def size(self) -> int:
        return len(self.signatures)

    def candidates(self, values: np.ndarray) -> set[str]:
        """The keys sharing at least one band with ``values``."""
        found: set[str] = set()
        for (start, end), buckets in zip(self.bands, self.buckets, strict=True):
            keys = buckets.get(values[start:end].tobytes())
            if keys:
                found.update(keys)
        return found

    def match(self, values: np.ndarray) -> tuple[str, float] | None:
        """``(key, estimated Jaccard)`` of the most similar indexed signature at or above the
        threshold (the first added of equally similar ones), or None."""
        best: tuple[str, float] | None = None
        for key in sorted(self.candidates(values), key=self.order.__getitem__):
            similarity = jaccard(values, self.signatures[key])
            if similarity < self.threshold:
                self.rejected_candidates += 1
            elif best is None or similarity > best[1]:
                best = (key, similarity)
        return best

    def add(self, key: str, values: np.ndarray) -> None:
        for (start, end), buckets in zip(self.bands, self.buckets, strict=True):
            buckets.setdefault(values[start:end].tobytes(), []).append(key)
        self.signatures[key] = values
        self.order.setdefault(key, len(self.order))
