"""lineage.json and the version link, through the real pipeline machinery (stand-in stages)."""

from __future__ import annotations

import hashlib
import json

import pytest

from runner import pipeline
from runner.run.context import Outcome
from tests.helpers import recipe_of
from tests.iterate.conftest import make_parent_run, write_instructions


def stages(name):
    def run(recipe, ctx):
        ctx.log_file.parent.mkdir(parents=True, exist_ok=True)
        ctx.log_file.write_text(name)
        if name == "data":
            for split in ("train", "val", "test"):
                (ctx.out / f"{split}.jsonl").write_text(f'{{"split": "{split}"}}\n')
        return Outcome()

    return run


@pytest.fixture(autouse=True)
def stand_ins(monkeypatch):
    monkeypatch.setattr(pipeline, "load_stage", stages)


def test_a_run_records_where_it_comes_from(tmp_path):
    recipe = recipe_of({"name": "meton", "version": "v1", "eval": {"enabled": False}}, tmp_path)
    result = pipeline.run_pipeline(recipe, root=tmp_path / "runs", say=lambda m: None)
    lineage = json.loads((result.run_dir / "lineage.json").read_text())
    assert (lineage["name"], lineage["version"], lineage["run"]) == (
        "meton",
        "v1",
        result.run_dir.name,
    )
    assert lineage["recipe_hash"] == recipe.hash()
    assert lineage["base_model"] == {"ref": "tiny:qwen2", "revision": None}
    assert set(lineage["stages"]) == {"data", "train"} and lineage["parent"] is None
    train_split = result.run_dir / "data" / "train.jsonl"
    assert (
        lineage["data"]["data/train.jsonl"] == hashlib.sha256(train_split.read_bytes()).hexdigest()
    )
    assert (tmp_path / "runs" / "meton" / "v1").resolve() == result.run_dir

    # Another version of the recipe gets its own link; v1 still points at its run.
    v2 = recipe_of({"name": "meton", "version": "v2", "eval": {"enabled": False}}, tmp_path)
    again = pipeline.run_pipeline(v2, root=tmp_path / "runs", say=lambda m: None)
    assert (tmp_path / "runs" / "meton" / "v2").resolve() == again.run_dir != result.run_dir
    assert (tmp_path / "runs" / "meton" / "v1").resolve() == result.run_dir


def test_a_child_records_its_parent_mode_and_replay(tmp_path, fitted_adapter):
    data = tmp_path / "parent-data"
    write_instructions(data / "src.jsonl", "old", 2)
    (data / "train.jsonl").write_text("{}\n")
    parent = make_parent_run(tmp_path, data, fitted_adapter)
    config = {
        "name": "meton",
        "version": "v2",
        "lora": {"r": 8, "alpha": 16},
        "continue_from": {"run": str(parent), "replay": {"fraction": 0.25, "seed": 7}},
        "eval": {"enabled": False},
    }
    recipe = recipe_of(config, tmp_path / "child")
    # The stand-in stages never check the parent; the preflight does, and it passes.
    result = pipeline.run_pipeline(recipe, root=tmp_path / "runs", say=lambda m: None)
    assert result.error is None
    lineage = json.loads((result.run_dir / "lineage.json").read_text())
    assert lineage["parent"]["version"] == "v1" and lineage["parent"]["run"] == parent.name
    assert lineage["parent"]["mode"] == "new_adapter"
    assert lineage["parent"]["replay"] == {"fraction": 0.25, "seed": 7}
    assert lineage["parent"]["stages"] == {"data": "d" * 64, "train": "t" * 64}
