"""Where libraries' chatter goes while a stage runs: the stage's log, not the user's terminal.

torch, transformers, torchao, peft and datasets print warnings (Python's ``warnings``), log
records (``logging``; torchao's "Failed to load ... _C_mxfp8" is one) and progress bars (tqdm)
when a stage imports and uses them in this process. The terminal shows one line per stage and
our own progress; the rest is kept, with a time stamp, in ``logs/<stage>.log`` next to what the
stage's subprocesses wrote there.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

# Read by the libraries when they are imported (and inherited by the tools we start, whose own
# output goes to the stage's log anyway): transformers' and datasets' loggers at errors only, no
# hub progress bars. tqdm stays on: the trainer's bar in Axolotl's output is what the train
# stage's progress bar follows (runner/train/progress.py), and bars drawn in this process go to
# the stage's log with the rest of descriptor 2.
QUIET_LIBRARIES = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
}


# Axolotl (posthog), Hugging Face and W&B send telemetry or reach the network by default; nothing
# a run does may. Set in this process (Axolotl's config loader is imported here too) and in the
# environment of every tool we start.
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


_terminal: TextIO | None = None
_progress = True


def terminal() -> TextIO:
    """The user's stderr, also while a stage's descriptor 2 goes to its log: progress bars and
    plain progress lines write here."""
    return _terminal or sys.stderr


def show_progress(enabled: bool) -> None:
    """``recipe run -q`` turns the stages' progress bars and lines off."""
    global _progress
    _progress = enabled


def progress_wanted() -> bool:
    return _progress


def quiet_libraries() -> None:
    """Set ``QUIET_LIBRARIES`` and ``OFFLINE`` in this process's environment unless the user
    set them."""
    for key, value in {**QUIET_LIBRARIES, **OFFLINE}.items():
        os.environ.setdefault(key, value)


@contextmanager
def library_output_to(log_file: Path) -> Iterator[None]:
    """Route Python warnings and log records raised while the block runs into ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    shown = warnings.showwarning

    def to_log(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        text = warnings.formatwarning(message, category, filename, lineno, line)
        handler.stream.write(text)
        handler.stream.flush()

    warnings.showwarning = to_log
    saved_fd = _stderr_to(log_file)
    try:
        yield
    finally:
        _stderr_back(saved_fd)
        warnings.showwarning = shown
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _stderr_to(log_file: Path) -> int | None:
    """Point file descriptor 2 at ``log_file``; returns the saved descriptor.

    Loggers with their own stderr handler (torch's ``W1130 ... _pytree.py`` lines) and C code
    write to descriptor 2 directly, past ``logging`` and ``warnings``. Only the main thread
    moves it: the descriptor is the whole process's, and pipelines run in threads (tests,
    servers) must not swap it under each other.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return None
    with open(log_file, "ab") as target:
        os.dup2(target.fileno(), 2)
    global _terminal
    _terminal = os.fdopen(saved, "w", buffering=1, encoding="utf-8", closefd=False)
    return saved


def _stderr_back(saved: int | None) -> None:
    global _terminal
    if saved is None:
        return
    with suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    if _terminal is not None:
        with suppress(OSError, ValueError):
            _terminal.flush()
        _terminal = None
    os.dup2(saved, 2)
    os.close(saved)
