"""The SkyPilot backend: a task that runs the node command on every node of a SkyPilot cluster.

SkyPilot provisions the nodes (any cloud, Kubernetes or Slurm), runs the profile's ``setup``
once per node (install recipe-runner there), then ``run`` on every node at once, with
``$SKYPILOT_NODE_RANK`` and ``$SKYPILOT_NODE_IPS`` set (SkyPilot's distributed-jobs guide). The
first IP hosts torchrun's c10d rendezvous, as in SkyPilot's own torchrun examples; each node's
``recipe run`` learns its rank and job (``$SKYPILOT_TASK_ID``) from them. Launched as a managed
job (``sky jobs launch``) where SkyPilot is installed; ``recipe plan`` prints the task either way.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from runner import proc
from runner.compute.profiles import CARRIED, Reach, Target


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # Shell scripts as literal blocks, readable as written.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def task(
    target: Target, recipe_name: str, nodes: int, gpus: int, command: Sequence[str]
) -> dict[str, Any]:
    """The task as data: pure, pinned by golden files (as YAML), shown by ``recipe plan``."""
    profile = target.profile
    resources: dict[str, Any] = {}
    if profile.accelerator:
        resources["accelerators"] = f"{profile.accelerator}:{gpus}"
    if profile.cloud:
        resources["cloud"] = profile.cloud
    if profile.region:
        resources["region"] = profile.region
    if profile.use_spot:
        resources["use_spot"] = True
    run = []
    if nodes > 1:
        run += [
            "# torchrun's c10d rendezvous is hosted by the first node",
            'export RECIPE_HEAD_ADDR="$(echo "$SKYPILOT_NODE_IPS" | head -n 1)"',
            "# every node runs the same command; $SKYPILOT_NODE_RANK tells each its rank",
        ]
    run.append(shlex.join(command))
    out: dict[str, Any] = {"name": f"recipe-{recipe_name}", "num_nodes": nodes}
    if resources:
        out["resources"] = resources
    if profile.workdir:
        out["workdir"] = profile.workdir
    if profile.file_mounts:
        out["file_mounts"] = dict(profile.file_mounts)
    out["envs"] = {**profile.envs, CARRIED: target.carried()}
    if profile.setup.strip():
        out["setup"] = profile.setup.rstrip() + "\n"
    out["run"] = "\n".join(run) + "\n"
    return out


def task_yaml(
    target: Target, recipe_name: str, nodes: int, gpus: int, command: Sequence[str]
) -> str:
    data = task(target, recipe_name, nodes, gpus, command)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)


def reach(target: Target) -> Reach:
    """``sky`` on PATH and answering; whether a cloud is set up is ``sky check``'s to say."""
    sky = shutil.which("sky")
    if sky is None:
        return Reach(
            False,
            "`sky` on PATH",
            "not found",
            "pip install 'skypilot[<your cloud>]' and run `sky check`, or launch the task "
            "`recipe plan` prints from a machine that has it",
        )
    status, out = proc.probe([sky, "--version"])
    if status != 0:
        return Reach(False, "`sky --version`", out or f"exit {status}")
    return Reach(True, "`sky --version`", out.splitlines()[-1] if out else sky)


def launch(target: Target, text: str, task_path: Path, say: Callable[[str], None]) -> None:
    """Write the task and launch it as a managed job, streaming SkyPilot's output."""
    checked = reach(target)
    if not checked.ok:
        raise target.unreachable(checked)
    task_path.parent.mkdir(parents=True, exist_ok=True)
    task_path.write_text(text, encoding="utf-8")
    name = yaml.safe_load(text)["name"]
    proc.run(
        ["sky", "jobs", "launch", "--name", name, "--yes", str(task_path)],
        stage="skypilot",
        log_file=task_path.with_suffix(".log"),
        on_line=say,
    )
