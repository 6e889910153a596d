"""The command that starts training, per ``compute.strategy``: pure, pinned by golden tests."""

from __future__ import annotations

from runner.recipe.model import Recipe


def processes(recipe: Recipe, *, cuda: bool) -> int:
    """One process per GPU for the distributed strategies; one otherwise (and always on CPU)."""
    if not cuda or recipe.get("compute.strategy", "single") == "single":
        return 1
    return int(recipe.get("compute.gpus", 1))


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


def preprocess_command(config_path: str, *, axolotl: str = "axolotl") -> list[str]:
    """Tokenize the dataset into the config's ``dataset_prepared_path`` before training."""
    return [axolotl, "preprocess", config_path]
