"""A real two-trial sweep on the tiny model (Axolotl on CPU, minutes): the table, a pruned
trial, and a best.yaml that validates and runs."""

from __future__ import annotations

import csv

import pytest

from runner.pipeline import run_pipeline
from runner.recipe.load import load_recipe
from runner.sweep.run import run_sweep
from tests.iterate.training import tiny_recipe

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("iterate-train")]


def test_two_trial_sweep_prunes_the_lagging_trial_and_its_best_runs(tmp_path):
    path = tiny_recipe(
        tmp_path / "recipe",
        train__max_steps=4,
        train__eval_steps=2,
        eval__compare_base=False,
        sweep={
            "params": {"train.learning_rate": [0.01, 1e-7]},
            "metric": "eval.held_out_loss",
            "stop_early": {"pruner": "median", "startup_trials": 1},
        },
    )
    root = tmp_path / "runs"
    said: list[str] = []
    result = run_sweep(path, root=root, say=said.append)

    rows = list(csv.DictReader((result.folder / "sweep.csv").open()))
    assert [(r["trial"], r["status"], r["train.learning_rate"]) for r in rows] == [
        ("0", "complete", "0.01"),
        ("1", "pruned", "1e-07"),
    ]
    done, pruned = rows
    assert float(done["eval.held_out_loss"]) == pytest.approx(float(done["held_out_loss"]))
    assert float(done["train_last_loss"]) < float(done["train_first_loss"])
    assert "stopped by the sweep's pruner at step 2" in pruned["note"]
    assert pruned["held_out_loss"] == ""  # never evaluated
    md = (result.folder / "sweep.md").read_text()
    assert (
        "| 1 | pruned | 1e-07 |" in md
        and (result.folder / "metric-vs-train_learning_rate.png").is_file()
    )

    # The winner was run with the recipe's exports and took the version name.
    assert result.promoted.error is None
    assert (root / "tiny-meton" / "v1").resolve() == result.promoted.run_dir

    best = load_recipe(result.folder / "best.yaml")
    assert best.train.learning_rate == 0.01 and best.sweep is None
    again = run_pipeline(best, root=root, say=said.append)
    assert again.error is None
    assert [s.status for s in again.stages] == ["cached"] * len(again.stages)
    print("\n".join(line for line in said if "trial" in line and "=" in line))
