"""Sweeps, fast: the real loader, pipeline machinery, Optuna study and outputs, with small
stand-ins for the heavy stages (as tests/pipeline/test_cache.py does). The stand-in train stage
feeds Axolotl-shaped evaluation lines to the real progress parser, so the pruner sees what it
sees in a real run; the real training sweep is test_sweep_training.py."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from runner import pipeline
from runner.recipe.load import load_recipe
from runner.run.context import Outcome
from runner.sweep.run import run_sweep
from runner.sweep.section import SweepSection, grid, metric_value, parse_space
from tests.iterate.conftest import write_instructions

# Validation loss after each step, by learning rate: 0.001 learns fastest, 1e-6 not at all.
SLOPE = {0.01: 2.0, 0.001: 2.5, 1e-06: 0.0}
STEPS = 3


class Stages:
    """Stand-ins recording which stage ran for which learning rate."""

    def __init__(self):
        self.calls: list[tuple[str, float]] = []

    def __call__(self, name):
        def run(recipe, ctx):
            from runner.train.progress import TrainProgress

            lr = None
            if name == "train":
                lr = recipe.train.learning_rate
            elif name == "eval":  # what it evaluates is what the train stage left
                lr = float((ctx.require("train") / "out.txt").read_text())
            self.calls.append((name, lr))
            ctx.log_file.parent.mkdir(parents=True, exist_ok=True)
            ctx.log_file.write_text(f"{name}\n")
            (ctx.out / "out.txt").write_text(str(lr) if name == "train" else name)
            if name == "train":
                progress = TrainProgress()
                for step in range(STEPS + 1):
                    progress.feed(f" {step * 25}%|##  | {step}/{STEPS} [00:01<00:03,  1.00s/it]")
                    loss = 10.0 - step * SLOPE[lr]
                    progress.feed(f"{{'eval_loss': '{loss}', 'epoch': '{step / STEPS}'}}")
                return Outcome(
                    summary={
                        "first_loss": 12.0,
                        "last_loss": 10.0 - STEPS * SLOPE[lr],
                        "last_eval_loss": 10.0 - STEPS * SLOPE[lr],
                    }
                )
            if name == "eval":
                loss = 10.0 - STEPS * SLOPE[lr] + 0.1
                return Outcome(
                    summary={"loss": {"base": 12.0, "tuned": loss}, "pass_rate": {"tuned": 0.5}}
                )
            return Outcome(outputs={name: "out.txt"})

        return run


@pytest.fixture
def stages(monkeypatch):
    recorder = Stages()
    monkeypatch.setattr(pipeline, "load_stage", recorder)
    return recorder


def write_recipe(folder: Path, sweep: dict, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_instructions(folder / "data.jsonl", "q", 20)
    recipe = {
        "recipe": 1,
        "name": "demo",
        "version": "v1",
        "sources": [{"type": "instructions", "path": "data.jsonl"}],
        "model": {"base": "tiny:qwen2"},
        "split": {"train": 0.8, "val": 0.1, "test": 0.1},
        "train": {"learning_rate": 0.01, "eval_steps": 1},
        "export": [
            {"type": "merge"},
            {"type": "gguf", "quantize": ["q8_0"]},
            {"type": "ollama", "from": "q8_0"},
        ],
        "sweep": sweep,
        **extra,
    }
    path = folder / "demo.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


SWEEP = {
    "params": {"train.learning_rate": ["1e-2", 0.001, "1e-6"]},
    "metric": "eval.held_out_loss",
    "stop_early": {"pruner": "median", "startup_trials": 1},
}


def test_a_grid_sweep_prunes_ranks_promotes_and_writes_a_runnable_best(tmp_path, stages):
    path = write_recipe(tmp_path / "recipe", SWEEP)
    root = tmp_path / "runs"
    result = run_sweep(path, root=root, say=lambda m: None)
    rows = list(csv.DictReader((result.folder / "sweep.csv").open()))
    assert [(r["trial"], r["status"], r["train.learning_rate"]) for r in rows] == [
        ("1", "complete", "0.001"),  # the best first
        ("0", "complete", "0.01"),
        ("2", "pruned", "1e-06"),
    ]
    assert rows[0]["eval.held_out_loss"] == "2.6"
    assert "stopped by the sweep's pruner at step 1" in rows[2]["note"]
    # The data stage ran once; the pruned trial never reached eval; exports ran only for the
    # winner, which reused its trial's training.
    names = [name for name, _ in stages.calls]
    assert names.count("data") == 1
    assert [lr for name, lr in stages.calls if name == "train"] == [0.01, 0.001, 1e-06]
    assert [lr for name, lr in stages.calls if name == "eval"] == [0.01, 0.001, 0.001]
    assert names.count("gguf") == 1 and names.count("ollama") == 1
    assert result.best["number"] == 1 and result.promoted.error is None
    assert (root / "demo" / "v1").resolve() == result.promoted.run_dir  # only the winner

    md = (result.folder / "sweep.md").read_text()
    assert "- best: trial 1, eval.held_out_loss = 2.6, `train.learning_rate` = 0.001" in md
    assert md.index("| 1 | complete |") < md.index("| 0 | complete |") < md.index("| 2 | pruned |")
    assert "![metric-vs-train_learning_rate](metric-vs-train_learning_rate.png)" in md
    assert (result.folder / "metric-vs-train_learning_rate.png").stat().st_size > 5000

    best = load_recipe(result.folder / "best.yaml")
    assert best.train.learning_rate == 0.001 and best.sweep is None
    assert [t.type for t in best.export] == ["merge", "gguf", "ollama"]
    again = pipeline.run_pipeline(best, root=root, say=lambda m: None)
    assert again.error is None and {s.status for s in again.stages} == {"cached"}


def test_resume_reruns_trials_a_killed_session_left_running(tmp_path, stages, monkeypatch):
    from runner.sweep import run as sweep_run
    from runner.sweep.study import open_study, suggest

    sweep = {"params": {"train.learning_rate": [0.01, 0.001]}}
    path = write_recipe(tmp_path / "recipe", sweep)
    root = tmp_path / "runs"

    def killed(sweep, worker=0, say=print):
        # The session took the first grid point and died (SIGKILL): the journal says RUNNING.
        study = open_study(sweep.spec, sweep.study_name, Path(sweep.folder), create=False)
        assert suggest(study.ask(), sweep.spec) == {"train.learning_rate": 0.01}

    with monkeypatch.context() as patch:
        patch.setattr(sweep_run, "work", killed)
        first = run_sweep(path, root=root, say=lambda m: None)
    assert [(t["number"], t["status"]) for t in first.trials] == [(0, "running"), (1, "waiting")]
    assert not (first.folder / "best.yaml").exists()

    said = []
    again = run_sweep(path, root=root, resume=True, say=said.append)
    assert again.folder == first.folder
    assert "sweep: 1 trial(s) left running by the last session will run again" in said
    rows = sorted(
        (t["number"], t["status"], t["values"]["train.learning_rate"]) for t in again.trials
    )
    assert rows == [(1, "complete", 0.001), (2, "complete", 0.01)]  # 0 ran again as 2
    assert (again.folder / "best.yaml").is_file()
    with pytest.raises(Exception, match="no sweep of this recipe"):
        other = write_recipe(tmp_path / "other", {"params": {"lora.r": [4]}})
        run_sweep(other, root=root, resume=True, say=lambda m: None)


def test_every_listed_value_is_checked_before_any_trial(tmp_path, stages):
    from runner.errors import UserError

    sweep = {"params": {"train.learning_rate": [0.01, -1], "lora.r": [8, "big"]}}
    path = write_recipe(tmp_path / "recipe", sweep)
    with pytest.raises(UserError) as error:
        run_sweep(path, root=tmp_path / "runs", say=lambda m: None)
    text = str(error.value)
    assert "sweep value train.learning_rate=-1" in text and "lora.r='big'" in text
    assert stages.calls == []


def test_grid_order_paired_values_and_ranges():
    section = SweepSection.model_validate(
        {
            "params": {"train.learning_rate": ["1e-5", "5e-5"]},
            "paired": [{"lora.r": 8, "lora.alpha": 16}, {"lora.r": 16, "lora.alpha": 32}],
        }
    )
    assert list(grid(section)) == [
        {"train.learning_rate": 1e-05, "paired": 0},
        {"train.learning_rate": 1e-05, "paired": 1},
        {"train.learning_rate": 5e-05, "paired": 0},
        {"train.learning_rate": 5e-05, "paired": 1},
    ]
    assert section.swept_keys() == ["train.learning_rate", "lora.r", "lora.alpha"]
    assert parse_space({"int": [1, 3]}).int_ == (1, 3)
    with pytest.raises(ValueError, match="bounds must be above 0"):
        parse_space({"log_uniform": [0, 1]})


def test_metric_names_read_the_run_summaries():
    summaries = {
        "eval": {
            "loss": {"base": 3.0, "tuned": 2.0},
            "pass_rate": {"tuned": 0.75},
            "checks": {"syntax": {"tuned": 1.0}},
            "latency": {"tuned": {"mean_seconds": 1.5}},
        },
        "train": {"last_loss": 0.5},
    }
    assert metric_value("eval.held_out_loss", summaries) == 2.0
    assert metric_value("eval.pass_rate", summaries) == 0.75
    assert metric_value("eval.checks.syntax", summaries) == 1.0
    assert metric_value("eval.seconds_per_answer", summaries) == 1.5
    assert metric_value("train.last_loss", summaries) == 0.5
    assert metric_value("eval.checks.stops", summaries) is None
    assert SweepSection(metric="eval.pass_rate").goal() == "maximize"
    assert SweepSection(metric="eval.seconds_per_answer").goal() == "minimize"


def test_parallel_trials_run_in_worker_processes_sharing_the_study(tmp_path):
    """Two spawned workers, the real stages: each trial is refused by the train stage's
    preflight (QLoRA without CUDA) in its own process, recorded as failed with the reason."""
    from runner.train.hardware import cuda_available

    if cuda_available():
        pytest.skip("QLoRA is not refused on a CUDA machine")
    sweep = {"params": {"lora.r": [4, 8]}, "parallel": 2}
    path = write_recipe(
        tmp_path / "recipe", sweep, model={"base": "tiny:qwen2", "quantization": "4bit"}
    )
    result = run_sweep(path, root=tmp_path / "runs", say=lambda m: None)
    assert sorted((t["number"], t["status"]) for t in result.trials) == [
        (0, "failed"),
        (1, "failed"),
    ]
    assert sorted(t["values"]["lora.r"] for t in result.trials) == [4, 8]
    assert all("needs a CUDA GPU" in t["note"] for t in result.trials)
    assert result.best is None and not (result.folder / "best.yaml").exists()
    assert "best: none (no trial finished)" in (result.folder / "sweep.md").read_text()
