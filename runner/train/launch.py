"""The command that starts training, per ``compute.strategy``: pure, pinned by golden tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from runner.recipe.fields import Section

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


class ComputeSection(Section):
    """`compute:`: where training runs."""

    target: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """A profile in compute.yaml (beside the recipe, else ~/.config/recipe-runner/compute.yaml)
    naming where the run goes: this machine, a Ray cluster, Slurm or SkyPilot. Unset: here."""
    nodes: int = Field(1, ge=1)
    """Machines to train on, each with compute.gpus GPUs; more than one needs a target."""
    gpus: int = Field(1, ge=1)
    """GPUs to train on per node (one process each, for ddp, fsdp and deepspeed)."""
    strategy: Literal["single", "ddp", "fsdp", "deepspeed"] = "single"
    zero_stage: Literal[1, 2, 3] = 2
    """DeepSpeed ZeRO stage."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    flash_attention: Literal["auto", True, False] = "auto"
    gpu: str | None = None
    """The GPU to size the run for in `recipe plan`'s estimate: a name (a100-80gb, h100, l4,
    rtx4090...) or a memory size (24GB); default: the GPU this machine has."""


@dataclass(frozen=True)
class Rendezvous:
    """torchrun's c10d rendezvous across nodes: every node runs the same command and the
    rendezvous numbers them; node 0 hosts it at ``endpoint`` (host:port)."""

    endpoint: str
    job: str  # the scheduler's job id, the same on every node


def processes(recipe: Recipe, *, cuda: bool) -> int:
    """One process per GPU for the distributed strategies; one otherwise (and always on CPU)."""
    if not cuda or recipe.compute.strategy == "single":
        return 1
    return recipe.compute.gpus


def ray_workers(recipe: Recipe) -> int:
    """Training workers on a Ray cluster: one per GPU of every node."""
    return recipe.compute.nodes * recipe.compute.gpus


def ray_train_keys(recipe: Recipe, resources_per_worker: dict[str, float]) -> dict[str, Any]:
    """Axolotl's Ray Train settings when training spans several workers (nothing for one: the
    job's driver trains as on one machine). Axolotl starts a ``TorchTrainer`` with
    ``ray_num_workers`` workers, each asking Ray for ``resources_per_worker``
    (axolotl/cli/train.py, docs/ray-integration.qmd)."""
    workers = ray_workers(recipe)
    if workers <= 1:
        return {}
    return {
        "use_ray": True,
        "ray_num_workers": workers,
        "resources_per_worker": dict(resources_per_worker),
    }


def launch_command(
    recipe: Recipe,
    config_path: str,
    *,
    cuda: bool,
    axolotl: str = "axolotl",
    rendezvous: Rendezvous | None = None,
    ray: bool = False,
) -> list[str]:
    """``axolotl train``: in-process for one device, through accelerate with one process per
    GPU, through torchrun across nodes.

    With one process, ``--launcher python`` trains in the ``axolotl`` process itself: no second
    interpreter start, and stopping it (NaN loss, Ctrl-C) stops the training, where accelerate's
    launcher would leave its child running. With several, Axolotl passes everything after ``--``
    to ``accelerate launch``; DDP, FSDP and DeepSpeed are switched on by the config's keys
    (``fsdp_config``, ``deepspeed``), so the strategies differ here only in the process count.
    Across nodes, every node runs the same torchrun command with a c10d rendezvous, as
    Axolotl's multi-node guide does (docs/multi-node.qmd). On a Ray cluster (``ray``), the
    config's ``use_ray`` makes the one ``axolotl`` process start Ray Train's workers itself.
    """
    n = processes(recipe, cuda=cuda)
    if ray:
        return [axolotl, "train", config_path, "--launcher", "python"]
    if recipe.compute.nodes > 1 and rendezvous is not None:
        return [
            axolotl,
            "train",
            config_path,
            "--launcher",
            "torchrun",
            "--",
            "--nnodes",
            str(recipe.compute.nodes),
            "--nproc_per_node",
            str(n),
            "--rdzv_id",
            rendezvous.job,
            "--rdzv_backend",
            "c10d",
            "--rdzv_endpoint",
            rendezvous.endpoint,
        ]
    if n == 1:
        return [axolotl, "train", config_path, "--launcher", "python"]
    return [
        axolotl,
        "train",
        config_path,
        "--launcher",
        "accelerate",
        "--",
        "--num_processes",
        str(n),
        "--num_machines",
        "1",
    ]
