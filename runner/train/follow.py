"""Training on a node other than the first: run the command node 0 published, where it runs.

Node 0's train stage publishes its torchrun command and its stage folder (on the shared runs
folder) right before it trains (``runner.compute.nodes``); every other node runs the same
command there, with its own Axolotl and the same quiet environment, and torchrun's c10d
rendezvous joins them. Its log stays with the stage's output: ``logs/train.node<rank>.log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner import proc
from runner.run.context import stage_log
from runner.train.stage import STAGE, axolotl_env, axolotl_executable


def join_training(record: dict[str, Any], rank: int) -> Path:
    """Run node 0's published training command on this node; returns its log."""
    cwd = Path(record["cwd"])
    argv = [axolotl_executable(), *record["argv"][1:]]
    log = stage_log(cwd, f"{STAGE}.node{rank}")
    proc.run(argv, stage=STAGE, log_file=log, env=axolotl_env(), cwd=cwd)
    return log
