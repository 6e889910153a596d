"""The copy of the data Axolotl reads: rows checked, meta stripped, last-turn flags."""

from __future__ import annotations

import json

import pytest

from runner.errors import StageError
from runner.train.data import prepare_training_data


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


TWO_TURNS = {
    "id": "a",
    "messages": [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
    ],
    "meta": {"source": "x", "line": 3},
}


def test_meta_is_dropped_and_counts_kept(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.jsonl", [TWO_TURNS, {**TWO_TURNS, "id": "b", "meta": {"line": "3"}}])
    out = prepare_training_data(data, tmp_path / "out", "assistant")
    assert out.counts == {"train": 2, "val": 0}
    assert out.assistant_turns == 4
    row = json.loads((tmp_path / "out/train.jsonl").read_text().splitlines()[0])
    assert set(row) == {"id", "messages"}
    assert "train" not in row["messages"][1]


def test_last_assistant_flags_only_the_last_answer(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.jsonl", [TWO_TURNS])
    prepare_training_data(data, tmp_path / "out", "last_assistant")
    row = json.loads((tmp_path / "out/train.jsonl").read_text())
    assert [m["train"] for m in row["messages"]] == [False, False, False, True]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "x"}, "no `messages` list"),
        ({"messages": []}, "no `messages` list"),
        (
            {"messages": [{"role": "bot", "content": "x"}]},
            "messages[0] has no system/user/assistant role",
        ),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content is not text"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
        ("not an object", "not a JSON object"),
    ],
)
def test_a_malformed_row_is_skipped_and_reported_with_its_line(tmp_path, row, message):
    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.jsonl", [TWO_TURNS, row])
    out = prepare_training_data(data, tmp_path / "out", "assistant")
    assert out.counts["train"] == 1
    assert out.notes == [f"1 row(s) of train.jsonl skipped (first: line 2: {message})"]


def test_no_training_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("")
    with pytest.raises(StageError, match="has no examples: every row was filtered out"):
        prepare_training_data(data, tmp_path / "out", "assistant")
