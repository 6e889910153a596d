"""MinHash signatures and LSH indexes (datasketch), shared by near-dedupe and decontamination.

Signatures are computed in worker processes (the expensive part) and sent to the main process as
plain arrays; only the LSH index lives in the main process. A shingle (``ngram`` consecutive
words) is hashed from its words' CRC32s with numpy (a polynomial over the word hashes, folded to
32 bits), so each word is hashed once instead of joining and hashing every n-gram; datasketch
then mixes and permutes those hashes (``update_batch`` with the hashes as input).
"""

from __future__ import annotations

import functools
import inspect
import zlib
from typing import Any

import numpy as np

# Multiplier of the shingle polynomial (odd, so no word position is lost modulo 2^64).
_BASE = np.uint64(0x9E3779B97F4A7C15)


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """32-bit hashes of the word ``ngram``-grams of ``text`` (words split at ASCII whitespace);
    a text of at most ``ngram`` words is one shingle."""
    words = np.fromiter((zlib.crc32(w) for w in text.encode("utf-8").split()), dtype=np.uint64)
    if len(words) <= ngram:
        width, count = len(words), 1
    else:
        width, count = ngram, len(words) - ngram + 1
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(width):
            hashes = hashes * _BASE + words[offset : offset + count]
    return ((hashes >> np.uint64(32)) ^ hashes) & np.uint64(0xFFFFFFFF)


def _identity(value: Any) -> Any:
    return value


@functools.lru_cache(maxsize=4)
def _sketch(num_perm: int) -> Any:
    """One MinHash per ``num_perm`` whose permutations are reused (building them costs more than
    sketching a short text)."""
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, hashfunc=_identity)


def signature(text: str, num_perm: int = 128, ngram: int = 5) -> np.ndarray:
    """The MinHash hash values of ``text`` (one array, cheap to pickle)."""
    sketch = _sketch(num_perm)
    sketch.clear()
    sketch.update_batch(shingle_hashes(text, ngram).tolist())  # ints: numpy scalars are slow
    return sketch.hashvalues.copy()


def preload() -> None:
    """Import datasketch now (two seconds, mostly scipy), so that forked workers inherit it."""
    _sketch(128)


@functools.cache
def _lean_kwargs() -> dict[str, Any]:
    from datasketch import LeanMinHash

    # datasketch >= 2.0 wants the scheme named when rebuilding from hash values.
    if "scheme" in inspect.signature(LeanMinHash.__init__).parameters:
        return {"scheme": _sketch(2).scheme}
    return {}


def as_minhash(values: np.ndarray) -> Any:
    """A datasketch LeanMinHash from hash values made by ``signature`` (a full MinHash would
    draw its permutations again for every example)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=_sketch(2).seed, hashvalues=values, **_lean_kwargs())


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
