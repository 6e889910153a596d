"""Runs that happen at the same time: two terminals, a CI job next to a developer, the job API.

Each stage key has an OS file lock; a second run of the same stage waits for the first and then
reuses its output, different recipes run side by side, and a run killed with SIGKILL while it
holds a lock leaves nothing that stops the next one (the kernel drops the lock with its holder).

Two variants of every case: real processes of the pipeline with recorder stages (milliseconds
of work each, slowed down so the runs overlap, as in test_cache.py), and real ``recipe run
--until data`` processes on the quickstart (slow-marked: the real data stage, tokenizer and all).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner import pipeline
from runner.run.context import Outcome
from tests.pipeline.test_cache import make_recipe

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
STAGES = ["data", "train", "merge", "gguf", "ollama", "smoke"]
WAIT_S = 120


class SlowRecorder:
    """Stage functions that append their name to a shared file (O_APPEND: one line per call,
    whichever process makes it) and take ``seconds`` to finish, so runs overlap. A stage named
    in ``block`` writes a marker and then sleeps until it is killed."""

    def __init__(self, calls: Path, seconds: float, block: str | None = None):
        self.calls, self.seconds, self.block = calls, seconds, block

    def __call__(self, name):
        def run(recipe, ctx):
            with self.calls.open("a") as fh:
                fh.write(f"{name} {os.getpid()}\n")
            (ctx.out / "partial-work.txt").write_text("begun")
            if name == self.block:
                (self.calls.parent / f"blocked-{name}").write_text(str(os.getpid()))
                time.sleep(3600)
            time.sleep(self.seconds)
            seed = f" {recipe.train.seed}" if name == "train" else ""
            (ctx.out / "out.txt").write_text(f"{name} of {recipe.name}{seed}")
            return Outcome(outputs={name: "out.txt"}, summary={"n": 1})

        return run


def _child(recipe, root: Path, calls: Path, seconds: float, block: str | None, out: Path) -> None:
    """One run in a forked process; its messages and result go to ``out``."""
    pipeline.load_stage = SlowRecorder(calls, seconds, block)
    messages = out.with_suffix(".log").open("a", buffering=1)
    result = pipeline.run_pipeline(recipe, root=root, say=lambda m: messages.write(m + "\n"))
    out.write_text(json.dumps({**result.to_json(), "error": str(result.error or "")}))
    os._exit(1 if result.error else 0)


def start(recipe, root, calls, out, *, seconds=0.3, block=None):
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(recipe, root, calls, seconds, block, out)
    )
    process.start()
    return process


def wait_for(predicate, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def calls_of(calls: Path) -> list[str]:
    return [line.split()[0] for line in calls.read_text().splitlines()] if calls.exists() else []


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under a stage folder (its manifest's timings left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "stage.manifest.json":
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_nothing_left(root: Path) -> None:
    """No unfinished stage folder and no temporary file anywhere under the runs folder."""
    partial = [p for p in root.rglob(".partial/*")]
    assert partial == []
    assert [p for p in root.rglob("*.tmp*")] == []


@pytest.mark.parametrize("runs", [2, 4])
def test_runs_of_one_recipe_at_once_run_each_stage_once(tmp_path, runs):
    recipe = make_recipe(tmp_path)
    root, calls = tmp_path / "runs", tmp_path / "calls.txt"
    children = [start(recipe, root, calls, tmp_path / f"r{i}.json") for i in range(runs)]
    for child in children:
        child.join(WAIT_S)
        assert child.exitcode == 0
    assert sorted(calls_of(calls)) == sorted(STAGES)  # each stage ran once, in one process
    results = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(runs)]
    assert len({r["run_dir"] for r in results}) == 1
    folders = {tuple(s["folder"] for s in r["stages"]) for r in results}
    assert len(folders) == 1  # every run points at the same finished outputs
    statuses = sorted(s["status"] for r in results for s in r["stages"])
    assert statuses.count("ran") == len(STAGES)
    waited = [(tmp_path / f"r{i}.log").read_text() for i in range(runs)]
    assert any("waiting for another run of this stage" in text for text in waited)
    assert_nothing_left(root)
    # The outputs are those of a run made alone.
    alone = tmp_path / "alone"
    child = start(recipe, alone, tmp_path / "alone-calls.txt", tmp_path / "alone.json")
    child.join(WAIT_S)
    for shared, single in zip(
        results[0]["stages"],
        json.loads((tmp_path / "alone.json").read_text())["stages"],
        strict=True,
    ):
        assert tree_digest(Path(shared["folder"])) == tree_digest(Path(single["folder"]))


def test_different_recipes_run_side_by_side_and_share_what_they_share(tmp_path):
    # Three training seeds (the data stage is the same for all three) and one other recipe name.
    recipes = [make_recipe(tmp_path, train__seed=seed) for seed in (1, 2, 3)]
    recipes.append(make_recipe(tmp_path, name="other"))
    root, calls = tmp_path / "runs", tmp_path / "calls.txt"
    children = [
        start(recipe, root, calls, tmp_path / f"r{i}.json") for i, recipe in enumerate(recipes)
    ]
    for child in children:
        child.join(WAIT_S)
        assert child.exitcode == 0
    counts = {stage: calls_of(calls).count(stage) for stage in STAGES}
    # data: once for the three seeds (one recipe root), once for "other"; the rest per recipe.
    assert counts == {"data": 2, **{stage: 4 for stage in STAGES[1:]}}
    results = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(4)]
    assert len({r["run_dir"] for r in results}) == 4
    for result, seed in zip(results[:3], (1, 2, 3), strict=True):
        train = Path(result["stages"][1]["folder"]) / "out.txt"
        assert train.read_text() == f"train of demo {seed}"
    assert_nothing_left(root)


def test_a_run_killed_while_holding_a_lock_is_taken_over(tmp_path):
    recipe = make_recipe(tmp_path)
    root, calls = tmp_path / "runs", tmp_path / "calls.txt"
    holder = start(recipe, root, calls, tmp_path / "holder.json", block="train")
    wait_for(lambda: (tmp_path / "blocked-train").exists(), "the first run to hold train's lock")
    waiter = start(recipe, root, calls, tmp_path / "waiter.json")
    wait_for(
        lambda: (
            "train: waiting" in (tmp_path / "waiter.log").read_text()
            if (tmp_path / "waiter.log").exists()
            else False
        ),
        "the second run to wait for the lock",
    )
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(WAIT_S)
    waiter.join(WAIT_S)
    assert waiter.exitcode == 0
    result = json.loads((tmp_path / "waiter.json").read_text())
    assert {s["stage"]: s["status"] for s in result["stages"]} == {
        "data": "cached",
        **{stage: "ran" for stage in STAGES[1:]},
    }
    assert_nothing_left(root)
    # Nothing left behind stops a later run: everything is reused.
    again = pipeline.run_pipeline(recipe, root=root, say=lambda m: None)
    assert again.error is None and {s.status for s in again.stages} == {"cached"}


# -- the same with real `recipe run --until data` processes --------------------------------------


def recipe_cli(root: Path, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "runner.cli", "run", str(QUICKSTART), "--until", "data"]
    return [*argv, "--runs-dir", str(root), *extra]


def spawn(argv: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("w") as fh:
        return subprocess.Popen(
            argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def finish(children: list[subprocess.Popen], logs: list[Path]) -> None:
    for child, log in zip(children, logs, strict=True):
        assert child.wait(timeout=600) == 0, log.read_text()[-3000:]


def data_digest(root: Path, name: str = "quickstart") -> dict[str, str]:
    folder = (root / name / "latest" / "data").resolve()
    return {k: v for k, v in tree_digest(folder).items() if not k.startswith("logs/")}


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> dict[str, str]:
    """The data stage of the quickstart made by one run on its own."""
    root = tmp_path_factory.mktemp("alone")
    log = root / "run.log"
    finish([spawn(recipe_cli(root), log)], [log])
    return data_digest(root)


@pytest.mark.slow
def test_recipe_run_three_times_at_once(tmp_path, alone):
    root = tmp_path / "runs"
    logs = [tmp_path / f"run{i}.log" for i in range(3)]
    finish([spawn(recipe_cli(root), log) for log in logs], logs)
    texts = [log.read_text() for log in logs]
    assert sum("data: running" in t for t in texts) == 1
    assert sum("data: cached" in t for t in texts) == 2
    assert not any("Traceback" in t for t in texts)
    assert data_digest(root) == alone
    assert_nothing_left(root)


@pytest.mark.slow
def test_recipe_run_of_different_recipes_at_once(tmp_path, alone):
    root = tmp_path / "runs"
    variants = [(), ("--set", "filters.2.max_chars=1500"), ("--set", "name=quickstart2")]
    logs = [tmp_path / f"run{i}.log" for i in range(len(variants))]
    finish([spawn(recipe_cli(root, *v), log) for v, log in zip(variants, logs, strict=True)], logs)
    assert all("data: running" in log.read_text() for log in logs)
    assert data_digest(root) == alone  # quickstart's own run is unchanged by the others
    assert data_digest(root, "quickstart2") == alone  # same data under another name
    assert len(list((root / "quickstart" / "stages").glob("data-*"))) == 2
    assert_nothing_left(root)


@pytest.mark.slow
def test_recipe_run_killed_while_holding_the_lock(tmp_path, alone):
    root = tmp_path / "runs"
    first = spawn(recipe_cli(root), tmp_path / "first.log")
    wait_for(lambda: any(root.glob("quickstart/stages/.partial/data-*")), "the data stage to start")
    second_log = tmp_path / "second.log"
    second = spawn(recipe_cli(root), second_log)
    wait_for(lambda: "waiting for another run" in second_log.read_text(), "the second run to wait")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finish([second], [second_log])
    assert "data: running" in second_log.read_text()
    assert data_digest(root) == alone
    assert_nothing_left(root)
    third_log = tmp_path / "third.log"
    finish([spawn(recipe_cli(root), third_log)], [third_log])
    assert "nothing to do" in third_log.read_text()
