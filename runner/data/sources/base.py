"""What every source shares: its name, where it reads, how it lists work and counts skips."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from runner.data.example import Example
from runner.data.outcome import Rejection, bad_input
from runner.data.reading import display_path, iter_json_records
from runner.recipe.fields import Operation, RecipePath

# Sampled paths per skip reason kept for the report (the counts are complete).
SKIP_SAMPLES = 10


class SourceOptions(Operation):
    """What every entry of `sources:` takes besides its own keys."""

    path: RecipePath
    """Where the source reads: a file or a folder, relative to the recipe file."""
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    """A short name for this source, used in reports and in `weight`/`max_examples` accounting;
    defaults to the type and index."""
    weight: float = Field(1.0, gt=0)
    """Relative share of this source in the mixed training set (1.0 = keep as is; 0.5 = sample
    half)."""
    max_examples: int | None = Field(None, ge=1)
    """Keep at most this many examples from this source (after filters)."""
    metadata: dict[str, Any] = {}
    """Extra metadata attached to every example of this source."""


class Source:
    """One recipe source. ``tasks()`` runs in the main process and lists cheap work items
    (usually files); ``read(task)`` runs in a worker process and yields examples or rejections.

    ``records`` is true for sources whose records are independent examples (instruction
    datasets, chat logs): the default split grouping then keeps each record apart instead of
    putting a whole JSONL file in one split.
    """

    records = False
    suffixes: tuple[str, ...] = ()
    pinned_split: str | None = None  # every example goes to this split (replay: train)

    Options = SourceOptions

    def __init__(self, options: SourceOptions, name: str, log_file: Path | None = None):
        self.options = options
        self.name = name
        self.stage = f"source:{name}"
        self.log_file = log_file
        self.path = Path(options.path)
        self.metadata = dict(options.metadata)
        self._skipped_files: list[tuple[str, str]] = []  # (reason, file), in arrival order
        self._skip_lock = threading.Lock()

    # -- listing (main process) -------------------------------------------------------------
    def tasks(self) -> Iterator[str]:
        """Files to read, as strings; a file source lists itself, a folder its matching files."""
        if self.path.is_file():
            yield str(self.path)
            return
        for file in sorted(self.path.rglob("*")):
            if file.is_file() and file.suffix.lower() in self.suffixes:
                yield str(file)

    def skip(self, reason: str, shown: str) -> None:
        # Listing runs in the pool's feeder thread while the main thread merges results, and
        # both count skips: they arrive in an order that changes from run to run.
        with self._skip_lock:
            self._skipped_files.append((reason, shown))

    @property
    def skipped_files(self) -> list[tuple[str, str]]:
        """``(reason, file)`` for every skipped file, by file (the same order every run)."""
        with self._skip_lock:
            return sorted(self._skipped_files, key=lambda pair: (pair[1], pair[0]))

    @property
    def skipped(self) -> dict[str, int]:
        """How many files each reason skipped, most first (then by reason)."""
        counts = Counter(reason for reason, _ in self.skipped_files)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def skip_samples(self) -> dict[str, list[str]]:
        """The first ``SKIP_SAMPLES`` files of each reason, by file."""
        samples: dict[str, list[str]] = {reason: [] for reason in self.skipped}
        for reason, file in self.skipped_files:
            if len(samples[reason]) < SKIP_SAMPLES:
                samples[reason].append(file)
        return samples

    @property
    def root(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    def shown(self, task: str) -> str:
        """How reports and rejected rows name a task: its path relative to the source."""
        return display_path(Path(task), self.root)

    def task_bytes(self, task: str) -> int:
        """The input size of a task, for the report's throughput (0 when unknown)."""
        try:
            return os.path.getsize(os.path.join(self.root, task))
        except OSError:
            return 0

    # -- reading (worker) -------------------------------------------------------------------
    def read(self, task: str) -> Iterator[Example | Rejection]:
        raise NotImplementedError

    def base_metadata(self, shown: str, line: int | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"source_file": shown}
        if line is not None:
            meta["line"] = line
        meta.update(self.metadata)
        return meta


class JsonRecordSource(Source):
    """A source of JSON/JSONL files whose records each become one example (or a rejection)."""

    records = True

    def read(self, task: str) -> Iterator[Example | Rejection]:
        path = Path(task)
        shown = display_path(path, self.root)
        for item in iter_json_records(path, self.stage, shown):
            if isinstance(item, Rejection):
                yield item
                continue
            line, record = item
            yield self.convert(record, shown, line)

    def convert(self, record: Any, shown: str, line: int) -> Example | Rejection:
        raise NotImplementedError

    def not_an_object(self, record: Any, shown: str, line: int) -> Rejection:
        return bad_input(
            self.stage,
            "not an object",
            f"expected a JSON object, got {type(record).__name__}",
            shown,
            line,
        )


_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


class FieldTemplate:
    """A Jinja template over one input record's fields; a missing field is a reported error."""

    def __init__(self, text: str):
        self.text = text
        self._template = _ENV.from_string(text)

    def render(self, fields: dict[str, Any]) -> str:
        """Render, raising ``KeyError(name)`` when the template uses a field the record lacks."""
        try:
            return self._template.render(**fields)
        except UndefinedError as exc:
            raise KeyError(_undefined_name(exc)) from None
        except TemplateError as exc:
            raise ValueError(str(exc)) from None


def _undefined_name(exc: UndefinedError) -> str:
    # Jinja says "'x' is undefined" or "'dict object' has no attribute 'y'".
    message = str(exc)
    parts = message.split("'")
    return parts[-2] if len(parts) >= 3 else message
