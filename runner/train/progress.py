"""Follow Axolotl's training output: step, loss and ETA for a progress bar; stop on a NaN loss.

Our plugin in the training process prints one line per optimizer step
(``recipe-runner: step 4/10 eta 00:21``, ``runner.train.handshake.STEP_LINE``); the Hugging Face
trainer prints one dict per logging step (``{'loss': 2.31, 'grad_norm': ..., 'epoch': 0.4}``;
recent versions quote the numbers), one per evaluation (``{'eval_loss': '13.14', ...}``, every
``train.eval_steps`` and once before the first step) and, when its logging is not quieted, a tqdm
bar (`` 40%|####  | 4/10 [00:03<00:04]``). Only those line shapes are read; everything else goes
to the log. Each evaluation loss is also handed to the watchers registered with
``watch_eval_loss`` (a sweep's pruner), which may stop the training.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runner.errors import StageError

# The trainer's own bar has no description before the percentage (dataset-map bars do).
_BAR = re.compile(r"^\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([^\]<]*)(?:<([^,\]]*))?")
_STEP = re.compile(r"^recipe-runner: step (\d+)/(\d+) eta (\S+)")
_LOSS = re.compile(r"['\"]loss['\"]:\s*['\"]?([-+\w.]+)['\"]?")
_EPOCH = re.compile(r"['\"]epoch['\"]:\s*['\"]?([\d.]+)['\"]?")
_EVAL_LOSS = re.compile(r"['\"]eval_loss['\"]:\s*['\"]?([-+\w.]+)['\"]?")


class NanLoss(StageError):
    """Training produced a NaN (or infinite) loss: stopped at once (QwenLM/Qwen3#670)."""


class TrainingStopped(StageError):
    """A watcher of the evaluation loss stopped the training (a sweep pruned its trial)."""


# Called with (step, eval_loss) for every evaluation Axolotl logs; may raise TrainingStopped.
EvalWatcher = Callable[[int, float], None]
_WATCHERS: list[EvalWatcher] = []


@contextlib.contextmanager
def watch_eval_loss(watcher: EvalWatcher) -> Iterator[None]:
    """Hand every evaluation loss of the trainings run inside this block to ``watcher``.

    The train stage runs in the process that calls the pipeline, and so does this parser; a
    sweep's trial registers its pruner here around its run (one trial per process)."""
    _WATCHERS.append(watcher)
    try:
        yield
    finally:
        _WATCHERS.remove(watcher)


@dataclass
class TrainProgress:
    """State read from the output so far; ``feed`` one line at a time."""

    step: int = 0
    total: int | None = None
    eta: str = ""
    losses: list[dict[str, Any]] = field(default_factory=list)
    eval_losses: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: str | None = None

    def feed(self, line: str) -> bool:
        """Update from one line; True when something shown on the bar changed.

        Raises ``NanLoss`` on the first non-finite loss, which stops the training process.
        """
        if "resume from checkpoint at" in line or "Resuming from last checkpoint at" in line:
            self.resumed_from = line.rsplit(" at ", 1)[-1].strip()
        step = _STEP.match(line)
        if step:
            self.step, self.total = int(step.group(1)), int(step.group(2))
            self.eta = "" if step.group(3) == "?" else step.group(3)
            return True
        bar = _BAR.match(line)
        if bar:
            step, total = int(bar.group(1)), int(bar.group(2))
            if self.total is None or total == self.total:  # ignore eval bars of other lengths
                self.step, self.total = step, total
                self.eta = (bar.group(4) or "").strip()
                return True
            return False
        evaluated = _EVAL_LOSS.search(line)
        if evaluated and line.lstrip().startswith("{"):
            try:
                value = float(evaluated.group(1))
            except ValueError:
                return False
            self.eval_losses.append({"step": self.step, "eval_loss": value})
            for watcher in list(_WATCHERS):
                watcher(self.step, value)
            return False
        loss = _LOSS.search(line)
        if loss and line.lstrip().startswith("{"):
            raw = loss.group(1)
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            epoch = _EPOCH.search(line)
            entry = {"step": self.step, "loss": value}
            if epoch:
                entry["epoch"] = float(epoch.group(1))
            self.losses.append(entry)
            if not math.isfinite(value):
                raise NanLoss(
                    "train",
                    f"the training loss became {raw} at step {self.step}: stopped. Usual causes: "
                    "a learning rate far too high (train.learning_rate), fp16 overflow "
                    "(try compute.precision: bf16 or fp32), or broken data; the log has the details",
                )
            return True
        return False

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1]["loss"] if self.losses else None
