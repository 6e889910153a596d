"""What the plugin changes in `datasets` inside Axolotl's process: a cheap tokenizer fingerprint
(`datasets` names its map caches by it, so it must still change with the tokenizer) and
in-process writing of a one-process save."""

from __future__ import annotations

import pytest

pytest.importorskip("axolotl")


def test_tokenizer_fingerprints_still_follow_the_tokenizer(monkeypatch):
    from datasets.fingerprint import Hasher
    from datasets.utils import _dill
    from transformers import AutoTokenizer

    from runner.models import resolve_base
    from runner.train.plugin import hash_tokenizers_quickly

    qwen = resolve_base("tiny:qwen2")
    first = AutoTokenizer.from_pretrained(qwen)
    # What the quick hash replaces: the Python copies of the vocabulary and merges.
    assert isinstance(first.__dict__.get("_vocab"), dict)
    assert isinstance(first.__dict__.get("_merges"), list)
    # `datasets` as it comes (another test in this process may have called the plugin), with
    # the class registered the way `datasets` registers a tokenizer class it has met.
    current = _dill._save_transformersPreTrainedTokenizerBase
    original = getattr(current, "original", current)
    monkeypatch.setattr(_dill, "_save_transformersPreTrainedTokenizerBase", original)
    monkeypatch.setitem(_dill.Pickler.dispatch, type(first), original)
    before = Hasher.hash(first)

    hash_tokenizers_quickly()
    hash_tokenizers_quickly()  # idempotent: the second call finds its own function in place
    again = AutoTokenizer.from_pretrained(qwen)
    assert Hasher.hash(first) == Hasher.hash(again)
    assert Hasher.hash(first) != before  # the registered class uses the quick function too

    added = AutoTokenizer.from_pretrained(qwen)
    added.add_tokens(["<recipe_runner_new_token>"])
    assert Hasher.hash(added) != Hasher.hash(first)

    templated = AutoTokenizer.from_pretrained(qwen)
    templated.chat_template = "{{ messages[0]['content'] }}"
    assert Hasher.hash(templated) != Hasher.hash(first)

    padded = AutoTokenizer.from_pretrained(qwen)
    padded.padding_side = "left" if first.padding_side == "right" else "right"
    assert Hasher.hash(padded) != Hasher.hash(first)

    other = AutoTokenizer.from_pretrained(resolve_base("tiny:deepseek-coder"))
    assert Hasher.hash(other) != Hasher.hash(first)
    assert first.__dict__["_vocab"] is not None  # hashing left the tokenizer as it was
    assert first("def f():")["input_ids"] == again("def f():")["input_ids"]


def test_a_one_process_save_writes_in_this_process(tmp_path, monkeypatch):
    import datasets.arrow_dataset as arrow

    from datasets import Dataset, load_from_disk
    from runner.train.plugin import save_datasets_in_process

    rows = Dataset.from_dict({"input_ids": [[1, 2, 3], [4]], "labels": [[-100, 2, 3], [4]]})
    save_datasets_in_process()
    save_datasets_in_process()  # idempotent

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(arrow.mp, "get_context", no_pool)
    rows.save_to_disk(str(tmp_path / "one"), num_proc=1, max_shard_size=None)
    assert load_from_disk(str(tmp_path / "one")).to_dict() == rows.to_dict()
    with pytest.raises(AssertionError, match="process pool"):  # more processes: still a pool
        rows.save_to_disk(str(tmp_path / "two"), num_proc=2)
