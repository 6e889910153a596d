"""MinHash signatures: the same in every process and run, and the same as datasketch's own
MinHash with the same hash function (the permutations are drawn once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from runner.data.minhash import NearIndex, shingles, signature

TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.mark.parametrize(
    ("text", "ngram", "expected"),
    [
        ("", 5, {b""}),
        ("one two", 5, {b"one two"}),
        ("a b c", 3, {b"a b c"}),
        ("a  b\n\tc d", 3, {b"a b c", b"b c d"}),
        ("x y x y x y", 2, {b"x y", b"y x"}),
        ("caf\u00e9 \u3000 na\u00efve", 1, {"caf\u00e9".encode(), "na\u00efve".encode()}),
    ],
)
def test_shingles(text, ngram, expected):
    assert set(shingles(text, ngram)) == expected


def test_repeated_shingles_give_the_signature_of_their_set():
    """Shingles keep their repeats (a MinHash's minimums do not change with them): the
    signature is the one the set of distinct shingles gives datasketch's MinHash."""
    from datasketch import MinHash
    from xxhash import xxh32_intdigest

    from runner.data.minhash import SEED

    text = "x = 1\n" * 50 + TEXT * 3 + "caf\u00e9 \u3000 na\u00efve " * 4
    assert len(shingles(text, 3)) > len(set(shingles(text, 3)))
    sketch = MinHash(num_perm=128, seed=SEED, hashfunc=xxh32_intdigest)
    sketch.update_batch(set(shingles(text, 3)))
    assert np.array_equal(signature(text, 128, 3), sketch.hashvalues)


def test_signature_is_the_same_in_another_process():
    """Signatures are compared across worker processes: a hash seeded per process (Python's
    ``hash()`` of str) would make every pair of examples from two workers look different."""
    code = (
        "import sys; from runner.data.minhash import signature; "
        "print(signature(sys.argv[1], 64, 3).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, TEXT], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == str(signature(TEXT, 64, 3).tolist())


def test_signature_is_datasketchs_minhash():
    from datasketch import MinHash
    from xxhash import xxh32_intdigest

    from runner.data.minhash import SEED

    for num_perm in (16, 128):
        sketch = MinHash(num_perm=num_perm, seed=SEED, hashfunc=xxh32_intdigest)
        sketch.update_batch(set(shingles(TEXT, 2)))
        assert np.array_equal(signature(TEXT, num_perm, 2), sketch.hashvalues)


def test_signature_finds_itself_in_the_index():
    """A signature finds itself, and a near copy of its text, in the LSH index."""
    index = NearIndex(0.8, 128)
    index.add("a", signature(TEXT))
    assert index.match(signature(TEXT + "\n")) == ("a", 1.0)
    assert index.match(signature("something else entirely, with other words")) is None


def test_equally_similar_matches_name_the_first_added():
    """The detail of a near-duplicate row names the same kept example in every run."""
    code = (
        "from runner.data.minhash import NearIndex, signature\n"
        "index = NearIndex(0.5, 128)\n"
        "for key in 'zyxwvutsrq':\n"
        "    index.add(key, signature('the same words in the same order, every one'))\n"
        "print(index.match(signature('the same words in the same order, every one')))\n"
    )
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        ).stdout
        assert out.strip() == "('z', 1.0)"


def test_index_proposes_what_datasketchs_lsh_proposes():
    """``NearIndex`` keeps datasketch's band layout in its own dicts: for every query, the
    candidates are the keys ``MinHashLSH.query`` answers (texts that share lines, so that
    some pairs share bands and others do not)."""
    import random

    from datasketch import LeanMinHash, MinHash, MinHashLSH

    scheme = getattr(MinHash(num_perm=2), "scheme", None)
    extra = {} if scheme is None else {"scheme": scheme}
    rng = random.Random(5)
    lines = [f"line {i} of {rng.choice(['a', 'b', 'c'])} words here" for i in range(60)]
    texts = [" ".join(rng.sample(lines, rng.randint(10, 30))) for _ in range(150)]
    texts += [text + " and one more" for text in texts[:40]]
    for threshold in (0.5, 0.85):
        ours = NearIndex(threshold, 128)
        theirs = MinHashLSH(threshold=threshold, num_perm=128)
        proposed = 0
        for number, text in enumerate(texts):
            values = signature(text)
            lean = LeanMinHash(seed=1, hashvalues=values, **extra)
            assert ours.candidates(values) == set(theirs.query(lean)), (threshold, number)
            proposed += bool(ours.candidates(values))
            ours.add(f"t{number}", values)
            theirs.insert(f"t{number}", lean, check_duplication=False)
        assert 0 < proposed < len(texts)
