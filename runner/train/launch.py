"""The command that starts training, per ``compute.strategy``: pure, pinned by golden tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from runner.recipe.fields import Section

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


class ComputeSection(Section):
    """`compute:`: where training runs."""

    gpus: int = Field(1, ge=1)
    """GPUs to train on (one process each, for ddp, fsdp and deepspeed)."""
    strategy: Literal["single", "ddp", "fsdp", "deepspeed"] = "single"
    zero_stage: Literal[1, 2, 3] = 2
    """DeepSpeed ZeRO stage."""
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    flash_attention: Literal["auto", True, False] = "auto"
    gpu: str | None = None
    """The GPU to size the run for in `recipe plan`'s estimate: a name (a100-80gb, h100, l4,
    rtx4090...) or a memory size (24GB); default: the GPU this machine has."""


def processes(recipe: Recipe, *, cuda: bool) -> int:
    """One process per GPU for the distributed strategies; one otherwise (and always on CPU)."""
    if not cuda or recipe.compute.strategy == "single":
        return 1
    return recipe.compute.gpus


def launch_command(
    recipe: Recipe, config_path: str, *, cuda: bool, axolotl: str = "axolotl"
) -> list[str]:
    """``axolotl train``: in-process for one device, through accelerate with one process per GPU.

    With one process, ``--launcher python`` trains in the ``axolotl`` process itself: no second
    interpreter start, and stopping it (NaN loss, Ctrl-C) stops the training, where accelerate's
    launcher would leave its child running. With several, Axolotl passes everything after ``--``
    to ``accelerate launch``; DDP, FSDP and DeepSpeed are switched on by the config's keys
    (``fsdp_config``, ``deepspeed``), so the strategies differ here only in the process count.
    """
    n = processes(recipe, cuda=cuda)
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
