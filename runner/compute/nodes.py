"""The nodes of a multi-node run: who each is, and how the nodes after the first join training.

Every node runs the same command (``node_command``); the scheduler tells each its rank
(``$SLURM_NODEID``, ``$SKYPILOT_NODE_RANK``, or ``--node-rank``). Node 0 runs the whole
pipeline. The others only take part in training: right before launching Axolotl, node 0's train
stage publishes the exact command in a small launch record on the shared runs folder
(``<runs>/<recipe>/.nodes/<job>.json``, keyed by the scheduler's job id, so a record from an
earlier job is never joined), and each other node runs that command with torchrun's c10d
rendezvous, which numbers the nodes itself. When node 0's run ends (trained, reused, or failed),
the record says so and the waiting nodes stop. Merge, GGUF, Ollama and eval run on node 0 only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import UserError

# Which variable tells a process its node rank and its job, first found wins.
RANK_VARIABLES = ("RECIPE_NODE_RANK", "SLURM_NODEID", "SKYPILOT_NODE_RANK")
JOB_VARIABLES = ("RECIPE_JOB_ID", "SLURM_JOB_ID", "SKYPILOT_TASK_ID")
# The first node's address, exported by the rendered sbatch script and SkyPilot task.
HEAD_VARIABLE = "RECIPE_HEAD_ADDR"
RECORD_FOLDER = ".nodes"


@dataclass(frozen=True)
class Node:
    """This process's place in the run: rank ``rank`` of ``count`` nodes in job ``job``."""

    rank: int = 0
    count: int = 1
    job: str | None = None
    head: str | None = None  # the first node's address, for the rendezvous


def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def this_node(count: int, rank: int | None = None, env: Mapping[str, str] | None = None) -> Node:
    """Who this process is among ``count`` nodes (``rank`` from ``--node-rank`` wins)."""
    env = os.environ if env is None else env
    if count == 1:
        return Node()
    if rank is None:
        found = _first(env, RANK_VARIABLES)
        if found is not None:
            name, value = found
            if not value.isdigit():
                raise UserError(f"${name} is {value!r}, not a node rank")
            rank = int(value)
    rank = rank or 0
    if not 0 <= rank < count:
        raise UserError(f"this is node {rank}, but compute.nodes is {count} (ranks 0-{count - 1})")
    job = _first(env, JOB_VARIABLES)
    if job is None:
        raise UserError(
            f"compute.nodes is {count}, and the nodes of one run must share a job id: Slurm "
            "sets $SLURM_JOB_ID, SkyPilot $SKYPILOT_TASK_ID; by hand, set $RECIPE_JOB_ID to the "
            "same value on every node"
        )
    head = env.get(HEAD_VARIABLE, "").strip()
    if not head:
        ips = env.get("SKYPILOT_NODE_IPS", "").split()
        head = ips[0] if ips else socket.gethostname()
    return Node(rank, count, job[1], head)


def node_command(
    recipe_arg: str,
    runs_dir: str,
    overrides: Sequence[str] = (),
    *,
    until: str | None = None,
    force: str | None = None,
) -> list[str]:
    """The command every node of a submitted run executes (the same on each)."""
    argv = ["recipe", "run", recipe_arg, "--runs-dir", runs_dir]
    for override in overrides:
        argv += ["--set", override]
    if until:
        argv += ["--until", until]
    if force:
        argv += ["--force", force]
    return argv


def recipe_argument(recipe_path: Path, workdir: str | None) -> str:
    """How the nodes name the recipe: relative to the folder a submission ships to them
    (``workdir``), else the same absolute path (a shared file system)."""
    path = Path(recipe_path).absolute()
    if workdir is None:
        return str(path)
    try:
        return path.relative_to(Path(workdir).absolute()).as_posix()
    except ValueError:
        raise UserError(
            f"the recipe {path} is outside the folder the target ships to its nodes ({workdir}); "
            "move it inside, or change the profile's working folder"
        ) from None


# -- the launch record ---------------------------------------------------------------------------


def record_path(recipe_root: Path, job: str) -> Path:
    """Where node 0 of job ``job`` publishes its training launch (``recipe_root`` is
    ``<runs>/<recipe name>``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job)
    return recipe_root / RECORD_FOLDER / f"{safe}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def publish_launch(path: Path, argv: Sequence[str], cwd: Path) -> None:
    """Node 0, right before training: the command the other nodes run, and where."""
    _write(path, {"state": "training", "argv": [str(a) for a in argv], "cwd": str(cwd)})


@contextmanager
def leading(node: Node, recipe_root: Path) -> Iterator[None]:
    """Node 0's whole run: the record starts empty and says "ended" however the run ends,
    so no other node waits for a training that will not come."""
    if node.count == 1 or node.rank != 0 or node.job is None:
        yield
        return
    path = record_path(recipe_root, node.job)
    _write(path, {"state": "started"})
    try:
        yield
    finally:
        record = read_record(path) or {}
        _write(path, {**record, "state": "ended"})


def wait_for_launch(
    path: Path,
    *,
    poll: float = 2.0,
    timeout: float | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """The launch record once node 0 publishes it; None when node 0's run ended without
    training here (the train stage was reused, or the run failed before it)."""
    start = time.monotonic()
    said = False
    while True:
        record = read_record(path) or {}
        state = record.get("state")
        if state == "training":
            return record
        if state == "ended":
            return None
        if not said:
            say(f"waiting for node 0 to reach training ({path})")
            said = True
        if timeout is not None and time.monotonic() - start > timeout:
            raise UserError(f"node 0 did not reach training within {timeout:g} s ({path})")
        time.sleep(poll)
