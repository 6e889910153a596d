"""MinHash signatures and LSH indexes (datasketch), shared by near-dedupe and decontamination.

Signatures are computed in worker processes (the expensive part) and sent to the main process as
plain arrays; only the LSH index lives in the main process. Shingles are hashed with CRC32,
about twice as fast as datasketch's default SHA-1 at the same quality for this use.
"""

from __future__ import annotations

import inspect
import zlib
from typing import Any

import numpy as np


def shingles(text: str, ngram: int) -> list[bytes]:
    """Word n-grams of ``text``; a text shorter than ``ngram`` words is one shingle."""
    words = text.split()
    if len(words) <= ngram:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i : i + ngram]).encode("utf-8") for i in range(len(words) - ngram + 1)]


def signature(text: str, num_perm: int = 128, ngram: int = 5) -> np.ndarray:
    """The MinHash hash values of ``text`` (one array, cheap to pickle)."""
    from datasketch import MinHash

    sketch = MinHash(num_perm=num_perm, hashfunc=zlib.crc32)
    sketch.update_batch(shingles(text, ngram))
    return sketch.hashvalues


_SCHEME: dict[str, Any] | None = None


def as_minhash(values: np.ndarray) -> Any:
    """A datasketch MinHash from hash values made by ``signature``."""
    global _SCHEME
    from datasketch import MinHash

    if _SCHEME is None:
        # datasketch >= 2.0 wants the scheme named when rebuilding from hash values.
        takes_scheme = "scheme" in inspect.signature(MinHash.__init__).parameters
        _SCHEME = {"scheme": MinHash(num_perm=2).scheme} if takes_scheme else {}
    return MinHash(hashvalues=values, hashfunc=zlib.crc32, **_SCHEME)


class NearIndex:
    """An LSH index answering "is there an indexed text with Jaccard >= threshold?"."""

    def __init__(self, threshold: float, num_perm: int):
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.size = 0

    def match(self, values: np.ndarray) -> str | None:
        """The key of an indexed near duplicate of ``values``, verified by estimated Jaccard."""
        sketch = as_minhash(values)
        for key in self.lsh.query(sketch):
            return key
        return None

    def add(self, key: str, values: np.ndarray) -> None:
        self.lsh.insert(key, as_minhash(values), check_duplication=False)
        self.size += 1
