"""What ``recipe run`` does with a recipe whose ``compute.target`` is an engine: submit it there,
and, on the nodes, join the first node's training.

``submit_recipe(path, overrides)`` is the one call that sends a recipe to its target (the job
API calls it too): the nodes run the same ``recipe run`` with the same ``--set`` overrides, the
target carried in ``$RECIPE_TARGET`` and the profile's ``runs_dir``. ``plan_target`` is what
``recipe plan`` shows: the exact script, task or job submission.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runner.compute import ray, skypilot, slurm
from runner.compute.nodes import (
    Node,
    node_command,
    recipe_argument,
    record_path,
    wait_for_launch,
)
from runner.compute.profiles import Reach, Target, recipe_target
from runner.errors import UserError
from runner.pipeline import runs_root

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


@dataclass
class Submission:
    """A run rendered for its target: the node command and what the engine is given."""

    target: Target
    runs_dir: str
    command: list[str]  # what every node runs
    text: str  # the sbatch script, the SkyPilot task, or the Ray job as YAML
    ray_job: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.name,
            "backend": self.target.backend,
            "profile_file": self.target.file,
            "runs_dir": self.runs_dir,
            "command": self.command,
            "submission": self.ray_job if self.ray_job is not None else self.text,
        }


def _workdir(target: Target) -> str | None:
    """The folder the engine ships to its nodes, against which they name the recipe."""
    profile = target.profile
    if target.backend == "ray":
        working_dir = profile.runtime_env.get("working_dir")
        return working_dir if isinstance(working_dir, str) and "://" not in working_dir else None
    if target.backend == "skypilot":
        return profile.workdir
    return None  # Slurm nodes share the file system: the recipe's own absolute path


def render(
    recipe: Recipe,
    target: Target,
    overrides: Sequence[str] = (),
    *,
    runs_dir: str | None = None,
    until: str | None = None,
    force: str | None = None,
    recipe_arg: str | None = None,
) -> Submission:
    """The submission of ``recipe`` to ``target`` (pure but for the recipe's path)."""
    runs = runs_dir or target.profile.runs_dir
    arg = recipe_arg or recipe_argument(recipe.path, _workdir(target))
    command = node_command(arg, runs, overrides, until=until, force=force)
    nodes, gpus = recipe.compute.nodes, recipe.compute.gpus
    if target.backend == "ray":
        job = ray.submission(target, recipe.name, command)
        return Submission(target, runs, command, _yaml(job), job)
    if target.backend == "slurm":
        return Submission(
            target, runs, command, slurm.sbatch_script(target, recipe.name, nodes, gpus, command)
        )
    if target.backend == "skypilot":
        text = skypilot.task_yaml(target, recipe.name, nodes, gpus, command)
        return Submission(target, runs, command, text)
    raise UserError(f"compute.target: the {target.describe()} runs here; nothing to submit")


def _yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=4096)


def plan_target(recipe: Recipe, overrides: Sequence[str] = ()) -> dict[str, Any] | None:
    """What ``recipe plan`` shows about the target (None when the recipe runs here)."""
    target = recipe_target(recipe)
    if target is None:
        return None
    out: dict[str, Any] = {"target": target.name, "backend": target.backend, "file": target.file}
    if target.profile.remote:
        out.update(render(recipe, target, overrides).to_json())
    elif recipe.compute.nodes > 1:
        command = ["recipe", "run", str(recipe.path), *_sets(overrides)]
        out["by_hand"] = (
            f"on each of the {recipe.compute.nodes} machines, with RECIPE_JOB_ID (the same on "
            "each) and RECIPE_HEAD_ADDR (machine 0's address) set: "
            + " ".join(command)
            + " --node-rank K"
        )
    return out


def _sets(overrides: Sequence[str]) -> list[str]:
    return [part for o in overrides for part in ("--set", o)]


def submit(
    recipe: Recipe,
    overrides: Sequence[str] = (),
    *,
    until: str | None = None,
    force: str | None = None,
    runs_dir: str | None = None,
    dry_run: bool = False,
    follow: bool = True,
    say: Callable[[str], None] = print,
    write: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Send ``recipe`` to its target and, for Ray, follow the job to its end (Ctrl-C stops it
    on the cluster) unless ``follow`` is false. Returns what happened: target, job id, status,
    where the runs are."""
    target = recipe_target(recipe)
    if target is None or not target.profile.remote:
        raise UserError("compute.target: this recipe runs here; use run_pipeline")
    sub = render(recipe, target, overrides, runs_dir=runs_dir, until=until, force=force)
    result: dict[str, Any] = {**sub.to_json(), "job": None, "status": "not submitted"}
    if dry_run:
        say(f"[dry-run] would submit to the {target.describe()}:\n{sub.text}")
        return result
    write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if target.backend == "ray":
        assert sub.ray_job is not None
        client, job_id = ray.submit(target, sub.ray_job)
        result["job"] = job_id
        say(f"submitted Ray job {job_id} to {target.profile.address} ({target.describe()})")
        result["status"] = "submitted"
        if follow:
            result["status"] = ray.follow(target, client, job_id, write=write, say=say)
    elif target.backend == "slurm":
        script = Path(sub.runs_dir) / recipe.name / "submissions" / f"{stamp}-{target.name}.sbatch"
        result["job"] = slurm.submit(target, sub.text, script)
        result["status"] = "submitted"
        say(
            f"submitted Slurm job {result['job']} ({script}); its log: "
            f"{sub.runs_dir}/{recipe.name}/slurm-{result['job']}.out; `squeue -j {result['job']}`"
        )
    else:
        task = runs_root() / recipe.name / "submissions" / f"{stamp}-{target.name}.sky.yaml"
        skypilot.launch(target, sub.text, task, say)
        result["status"] = "launched"
    latest = Path(sub.runs_dir) / recipe.name / "latest"
    where = latest.resolve() if latest.exists() else latest
    say(f"runs of {recipe.name} on {target.name}: {where}")
    result["run_dir"] = str(where)
    return result


def reach(target: Target) -> Reach:
    """Whether the target answers from here (``recipe doctor --target``; every submission
    asks first)."""
    if target.backend == "ray":
        return ray.reach(target)
    if target.backend == "slurm":
        return slurm.reach(target)
    if target.backend == "skypilot":
        return skypilot.reach(target)
    return Reach(True, "this machine", "runs here")


def submit_recipe(path: str | Path, overrides: Sequence[str] = (), **options: Any) -> dict:
    """Load a recipe and send it to its target: the entry the job API calls."""
    from runner.recipe.load import load_recipe

    return submit(load_recipe(path, list(overrides)), overrides, **options)


def join(recipe: Recipe, root: Path, node: Node, say: Callable[[str], None] = print) -> int:
    """A node other than the first: wait for node 0's training launch, run it here, exit.
    Node 0 runs every other stage."""
    from runner.train.follow import join_training

    assert node.job is not None
    path = record_path(root / recipe.name, node.job)
    say(f"node {node.rank} of {node.count} (job {node.job}): joins node 0's training")
    record = wait_for_launch(path, say=say)
    if record is None:
        say(f"node {node.rank}: node 0's run ended without training here; nothing to do")
        return 0
    log = join_training(record, node.rank)
    say(f"node {node.rank}: training done ({log})")
    return 0
