"""continue_from.replay: a seeded share of the parent's training split, mixed into the new data
(and only into its training split), recorded in the data report."""

from __future__ import annotations

import json

import pytest

from runner.data.build import run as build
from runner.recipe.problems import RecipeErrors
from runner.run.context import StageContext
from tests.helpers import recipe_of
from tests.iterate.conftest import write_instructions


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def child(tmp_path, parent_run, **replay):
    source = write_instructions(tmp_path / "new.jsonl", "new", 10)
    return recipe_of(
        {
            "name": "child",
            "sources": [{"type": "instructions", "path": str(source)}],
            "split": {"train": 0.8, "val": 0.1, "test": 0.1},
            "prompt": {"template": "chatml", "system": "You are the new assistant."},
            "train": {"seq_len": 256},
            "continue_from": {"run": str(parent_run), "replay": replay},
        },
        tmp_path,
    )


def built(recipe, folder, tokens):
    ctx = StageContext(stage="data", out=folder, run_dir=folder.parent)
    build(recipe, ctx, tokens=tokens, progress=False)
    return {name: rows(folder / f"{name}.jsonl") for name in ("train", "val", "test")}


def test_replay_mixes_a_seeded_share_of_the_parent_into_train_only(tmp_path, parent_run, tokens):
    parent_train = rows(parent_run / "data" / "train.jsonl")
    splits = built(child(tmp_path, parent_run, fraction=0.5, seed=3), tmp_path / "a", tokens)
    replayed = [r for r in splits["train"] if r["meta"]["source"] == "replay"]
    assert len(replayed) == round(len(parent_train) * 0.5) == 16
    assert all(r["meta"]["source"] != "replay" for r in splits["val"] + splits["test"])
    # As the parent trained them: its system prompt, not the new one.
    assert replayed[0]["messages"][0]["content"] == "You are the old assistant."
    assert {r["meta"]["replayed_from"] for r in replayed} == {f"parent v1 ({parent_run})"}
    new = [r for s in splits.values() for r in s if r["meta"]["source"] != "replay"]
    assert len(new) == 10 and new[0]["messages"][0]["content"] == "You are the new assistant."

    report = json.loads((tmp_path / "a" / "report.json").read_text())
    listing = report["sources"]["replay"]["listing"]
    assert listing["replayed"] == 16 and listing["parent_examples"] == len(parent_train)
    assert listing["fraction"] == 0.5 and listing["seed"] == 3
    md = (tmp_path / "a" / "report.md").read_text()
    assert f"Replay (continue_from.replay): 16 of the parent's {len(parent_train)}" in md

    again = built(child(tmp_path, parent_run, fraction=0.5, seed=3), tmp_path / "b", tokens)
    other = built(child(tmp_path, parent_run, fraction=0.5, seed=4), tmp_path / "c", tokens)

    def ids(s):
        return sorted(r["id"] for r in s["train"] if r["meta"]["source"] == "replay")

    assert ids(again) == ids(splits)
    assert ids(other) != ids(splits)


def test_replay_is_not_a_source_type_users_write(tmp_path):
    with pytest.raises(RecipeErrors) as error:
        recipe_of({"sources": [{"type": "replay", "path": str(tmp_path)}]}, tmp_path)
    assert "sources[0].type: 'replay' is not a known source" in str(error.value)
    assert "known: repo, docs" in str(error.value) and ", replay" not in str(error.value)
