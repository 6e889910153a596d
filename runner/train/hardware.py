"""What the machine offers for training, asked cheaply first (no torch import without a GPU)."""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path


def nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


@cache
def cuda_available() -> bool:
    """True when torch can use a CUDA device. ``RECIPE_FORCE_CPU=1`` pretends there is none."""
    if os.environ.get("RECIPE_FORCE_CPU") == "1":
        return False
    if not nvidia_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
