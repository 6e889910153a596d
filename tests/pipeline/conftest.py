"""One real training run of the quickstart, shared by every test that needs it.

Built once per test session (and per xdist worker: tests that use it share the xdist group
``quickstart-train``, so ``--dist loadgroup`` keeps them on one worker). The run is made the hard
way on purpose: ``recipe run`` is started as a separate process, killed (SIGKILL, whole process
group) as soon as Axolotl has written its first checkpoint, then run again, which must resume
from that checkpoint. The finished run then serves the loss, adapter, lock-file and no-op tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
# One epoch of the quickstart is 10 steps; a checkpoint every 3 gives the kill something to find.
OVERRIDES = ["train.epochs=1", "train.save_steps=3"]
KILL_TIMEOUT_S = 900
# Training for the tiny DeepSeek-Coder model (tests add their epochs): a learning rate only a
# tiny random model takes, short sequences, no packing on CPU.
TINY_DEEPSEEK_TRAIN = {
    "learning_rate": 0.005,
    "lr_scheduler": "cosine",
    "warmup_steps": 5,
    "batch_size": 4,
    "seq_len": 256,
    "sample_packing": False,
}


@dataclass
class TrainedRun:
    root: Path
    recipe: object
    result: object  # PipelineResult of the resumed run
    killed_at: str  # the checkpoint that existed when the first attempt was killed
    seconds: float

    @property
    def run_dir(self) -> Path:
        return self.result.run_dir

    @property
    def train(self):
        return next(s for s in self.result.stages if s.stage == "train")


def _start_and_kill_after_first_checkpoint(root: Path) -> str:
    argv = [sys.executable, "-m", "runner.cli", "run", str(QUICKSTART), "--until", "train"]
    argv += ["--runs-dir", str(root)] + [a for o in OVERRIDES for a in ("--set", o)]
    log = (root / "first-attempt.log").open("w")
    child = subprocess.Popen(
        argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + KILL_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            done = list(
                root.glob("quickstart/stages/.partial/train-*/checkpoint-*/trainer_state.json")
            )
            if done:
                time.sleep(0.5)  # let the checkpoint's last file close
                return done[0].parent.name
            if child.poll() is not None:
                pytest.fail(f"the first attempt ended before any checkpoint; see {log.name}")
            time.sleep(0.5)
        pytest.fail(f"no checkpoint within {KILL_TIMEOUT_S}s; see {log.name}")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        log.close()


@pytest.fixture(scope="session")
def trained_quickstart(tmp_path_factory) -> TrainedRun:
    from runner.pipeline import run_pipeline
    from runner.recipe.load import load_recipe

    root = tmp_path_factory.mktemp("runs")
    killed_at = _start_and_kill_after_first_checkpoint(root)
    recipe = load_recipe(QUICKSTART, OVERRIDES)
    start = time.monotonic()
    result = run_pipeline(recipe, until="train", root=root, say=lambda m: None)
    if result.error is not None:
        raise result.error
    return TrainedRun(root, recipe, result, killed_at, time.monotonic() - start)
