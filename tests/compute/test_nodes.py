"""The nodes of a multi-node run: who each is, and how the others join node 0's training."""

from __future__ import annotations

import threading
import time

import pytest

from runner.compute.nodes import (
    Node,
    leading,
    node_command,
    publish_launch,
    read_record,
    recipe_argument,
    record_path,
    this_node,
    wait_for_launch,
)
from runner.errors import UserError

# scheduler environment -> (rank, job, head), or the error's start
NODES = [
    (
        {"SLURM_NODEID": "1", "SLURM_JOB_ID": "812", "RECIPE_HEAD_ADDR": "gpu-01"},
        (1, "812", "gpu-01"),
    ),
    (
        {
            "SKYPILOT_NODE_RANK": "0",
            "SKYPILOT_TASK_ID": "sky-1",
            "SKYPILOT_NODE_IPS": "10.0.0.4\n10.0.0.5",
        },
        (0, "sky-1", "10.0.0.4"),
    ),
    (
        {
            "RECIPE_NODE_RANK": "1",
            "SLURM_NODEID": "0",
            "RECIPE_JOB_ID": "a",
            "RECIPE_HEAD_ADDR": "h",
        },
        (1, "a", "h"),
    ),
    ({"SLURM_NODEID": "2", "SLURM_JOB_ID": "1"}, "this is node 2, but compute.nodes is 2"),
    ({"SLURM_NODEID": "x", "SLURM_JOB_ID": "1"}, "$SLURM_NODEID is 'x', not a node rank"),
    ({"SLURM_NODEID": "1"}, "compute.nodes is 2, and the nodes of one run must share a job id"),
]


@pytest.mark.parametrize(("env", "expected"), NODES)
def test_this_node(env, expected):
    if isinstance(expected, str):
        with pytest.raises(UserError) as err:
            this_node(2, env=env)
        assert str(err.value).startswith(expected)
        return
    node = this_node(2, env=env)
    assert (node.rank, node.job, node.head) == expected and node.count == 2


def test_one_node_ignores_the_scheduler():
    assert this_node(1, env={"SLURM_NODEID": "3"}) == Node()


def test_the_rank_flag_wins():
    assert this_node(2, 1, env={"SLURM_NODEID": "0", "SLURM_JOB_ID": "9"}).rank == 1


def test_node_command():
    assert node_command("r.yaml", "/runs", ["train.epochs=1"], until="train") == [
        "recipe",
        "run",
        "r.yaml",
        "--runs-dir",
        "/runs",
        "--set",
        "train.epochs=1",
        "--until",
        "train",
    ]


def test_recipe_argument(tmp_path):
    recipe = tmp_path / "recipes" / "x.yaml"
    assert recipe_argument(recipe, None) == str(recipe)
    assert recipe_argument(recipe, str(tmp_path)) == "recipes/x.yaml"
    with pytest.raises(UserError, match="outside the folder the target ships to its nodes"):
        recipe_argument(recipe, str(tmp_path / "elsewhere"))


def test_a_follower_joins_the_launch_node_0_publishes(tmp_path):
    leader = Node(0, 2, "812", "gpu-01")
    path = record_path(tmp_path / "quickstart", "812")
    got: list = []
    with leading(leader, tmp_path / "quickstart"):
        follower = threading.Thread(target=lambda: got.append(wait_for_launch(path, poll=0.05)))
        follower.start()
        time.sleep(0.2)
        assert follower.is_alive() and read_record(path) == {"state": "started"}
        publish_launch(path, ["axolotl", "train", "axolotl.yaml"], tmp_path / "partial")
        follower.join(5)
    assert got == [
        {
            "state": "training",
            "argv": ["axolotl", "train", "axolotl.yaml"],
            "cwd": str(tmp_path / "partial"),
        }
    ]
    assert read_record(path)["state"] == "ended"


def test_a_run_that_ends_without_training_releases_the_followers(tmp_path):
    """Node 0 reused the train stage, or failed before it: the others stop waiting."""
    leader = Node(0, 2, "9", "h")
    path = record_path(tmp_path, "9")
    with pytest.raises(RuntimeError), leading(leader, tmp_path):
        raise RuntimeError("data stage failed")
    assert wait_for_launch(path, poll=0.05, timeout=1) is None


def test_an_earlier_job_is_never_joined(tmp_path):
    publish_launch(record_path(tmp_path, "811"), ["axolotl"], tmp_path)
    with pytest.raises(UserError, match="node 0 did not reach training within 0.2 s"):
        wait_for_launch(record_path(tmp_path, "812"), poll=0.05, timeout=0.2, say=lambda m: None)


@pytest.mark.slow
def test_a_node_runs_the_launch_node_0_publishes(tmp_path):
    """`recipe run --node-rank 1` waits for node 0's record, then runs that command (argv[0]
    is its own Axolotl) in node 0's stage folder, logging beside node 0's log. The command
    here is `axolotl --version`: Axolotl trains across processes only on GPUs."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "compute.yaml").write_text(
        f"targets:\n  lab:\n    backend: local\n    runs_dir: {tmp_path}/runs\n"
    )
    (tmp_path / "data.jsonl").write_text('{"instruction": "Say hi", "output": "hi"}\n')
    (tmp_path / "t.yaml").write_text(
        "recipe: 1\nname: t\nsources:\n  - type: instructions\n    path: data.jsonl\n"
        "model:\n  base: tiny:qwen2\ncompute:\n  target: lab\n  nodes: 2\n  strategy: ddp\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root), "RECIPE_JOB_ID": "j1"}
    argv = [sys.executable, "-m", "runner.cli", "run", "t.yaml", "--node-rank", "1"]
    node1 = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    path = record_path(tmp_path / "runs" / "t", "j1")
    time.sleep(3)  # node 1 starts; whether it already waits or not, it finds the record
    stage = tmp_path / "runs" / "t" / "stages" / ".partial" / "train-0123456789ab"
    stage.mkdir(parents=True)
    publish_launch(path, ["/elsewhere/bin/axolotl", "--version"], stage)
    out, _ = node1.communicate(timeout=300)
    assert node1.returncode == 0, out
    assert "node 1 of 2 (job j1): joins node 0's training" in out
    assert "node 1: training done" in out
    log = (stage / "logs" / "train.node1.log").read_text()
    assert "axolotl --version\n" in log and "axolotl, version 0.19.0" in log
    assert "/elsewhere/" not in log
