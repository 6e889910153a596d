"""The Slurm backend: an sbatch script that runs the node command on every node.

The script follows Axolotl's multi-node torchrun guide (docs/multi-node.qmd): one task per node
(``--ntasks-per-node=1``), the first node of the allocation as the c10d rendezvous host
(``$RECIPE_HEAD_ADDR``), and ``srun`` starting ``recipe run`` on each node, which learns its rank
from ``$SLURM_NODEID`` (``runner.compute.nodes``). ``--kill-on-bad-exit`` stops the other nodes
when one fails. The script is submitted with ``sbatch`` where it exists; ``recipe plan`` prints
it either way.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from runner import proc
from runner.compute.profiles import CARRIED, Reach, Target
from runner.errors import UserError


def sbatch_options(target: Target, recipe_name: str, nodes: int, gpus: int) -> dict[str, str]:
    """The ``#SBATCH`` options by long name; the profile's ``sbatch_options`` win (a null
    value drops one of ours, e.g. ``gpus-per-node`` on a cluster that counts ``gres``)."""
    profile = target.profile
    options: dict[str, str | None] = {
        "job-name": f"recipe-{recipe_name}",
        "nodes": str(nodes),
        "ntasks-per-node": "1",
        "gpus-per-node": str(gpus),
        "partition": profile.partition,
        "account": profile.account,
        "qos": profile.qos,
        "time": profile.time,
        "chdir": profile.workdir,
        "output": f"{profile.runs_dir}/{recipe_name}/slurm-%j.out",
    }
    options.update(profile.sbatch_options)
    return {k: v for k, v in options.items() if v is not None}


def sbatch_script(
    target: Target, recipe_name: str, nodes: int, gpus: int, command: Sequence[str]
) -> str:
    """The batch script: pure, pinned by golden files, shown by ``recipe plan``."""
    lines = [
        "#!/bin/bash",
        f"# recipe-runner: {recipe_name} on {target.describe()}, "
        f"{nodes} node{'s' if nodes > 1 else ''} x {gpus} GPU{'s' if gpus > 1 else ''}",
    ]
    for key, value in sbatch_options(target, recipe_name, nodes, gpus).items():
        lines.append(f"#SBATCH --{key}={value}" if value else f"#SBATCH --{key}")
    lines.append("set -euo pipefail")
    if target.profile.setup.strip():
        lines += ["", "# the profile's setup", target.profile.setup.rstrip()]
    lines += [
        "",
        "# the target this job runs on: recipe-runner runs here, it does not submit again",
    ]
    lines.append(f"export {CARRIED}={shlex.quote(target.carried())}")
    if nodes > 1:
        lines += [
            "# torchrun's c10d rendezvous is hosted by the first node of the allocation",
            'export RECIPE_HEAD_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
            "# every node runs the same command; $SLURM_NODEID tells each its rank",
            "srun --kill-on-bad-exit=1 " + shlex.join(command),
        ]
    else:
        lines.append(shlex.join(command))
    return "\n".join(lines) + "\n"


def reach(target: Target) -> Reach:
    """``sbatch`` on PATH, and the partition known to ``sinfo`` when it names one."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        return Reach(
            False,
            "`sbatch` on PATH",
            "not found",
            "run this on a Slurm login node, or submit the script `recipe plan` prints",
        )
    partition = target.profile.partition
    if partition and shutil.which("sinfo"):
        status, out = proc.probe(["sinfo", "--noheader", "--format=%P", "--partition", partition])
        if status != 0 or not out.strip():
            return Reach(False, f"`sinfo --partition {partition}`", out or f"exit {status}")
    return Reach(True, "`sbatch` on PATH", f"sbatch at {sbatch}")


def submit(target: Target, script: str, script_path: Path) -> str:
    """Write the script and submit it; returns Slurm's job id."""
    checked = reach(target)
    if not checked.ok:
        raise target.unreachable(checked)
    script_path.parent.mkdir(parents=True, exist_ok=True)
    script_path.write_text(script, encoding="utf-8")
    status, out = proc.probe(["sbatch", "--parsable", str(script_path)])
    if status != 0:
        raise UserError(f"`sbatch {script_path}` failed (exit {status}): {out}")
    return out.strip().splitlines()[-1].split(";")[0]
