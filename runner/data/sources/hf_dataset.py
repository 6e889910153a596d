"""`type: hf_dataset`: anything the `datasets` library loads (a local folder or file, or a hub id)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from runner.data.example import Example
from runner.data.outcome import Rejection, bad_input
from runner.data.registries import SOURCES
from runner.data.sources.base import Source, SourceOptions
from runner.data.sources.conversations import ConversationsSource
from runner.data.sources.instructions import InstructionsSource
from runner.recipe.fields import ModelRef

# File extension -> `datasets` builder name, for a path that is a single data file.
BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}


@SOURCES.register
class HFDatasetSource(Source):
    """Rows are mapped by ``format``: ``messages`` and ``sharegpt`` as conversations, ``alpaca``
    and ``prompt_completion`` as instructions; ``auto`` decides per row by its columns."""

    records = True

    class Options(SourceOptions):
        """Anything the `datasets` library can load."""

        type: Literal["hf_dataset"]
        path: ModelRef
        """A local folder or file `datasets` can load (starting with `.`, `/` or `~`, relative
        to the recipe file), or a hub id (needs the network)."""
        split: str = "train"
        data_files: str | tuple[str, ...] | None = None
        format: Literal["auto", "messages", "alpaca", "prompt_completion", "sharegpt"] = "auto"
        revision: str | None = None

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.split = options.split
        self.format = options.format
        conversation_format = {"messages": "openai", "sharegpt": "sharegpt"}.get(
            self.format, "auto"
        )
        self.chats = ConversationsSource(
            ConversationsSource.Options(
                type="conversations",
                path=options.path,
                format=conversation_format,
                metadata=options.metadata,
            ),
            name,
        )
        instruction_format = (
            self.format if self.format in ("alpaca", "prompt_completion") else "auto"
        )
        self.instructions = InstructionsSource(
            InstructionsSource.Options(
                type="instructions",
                path=options.path,
                format=instruction_format,
                metadata=options.metadata,
            ),
            name,
        )
        for helper in (self.chats, self.instructions):
            helper.stage = self.stage

    @property
    def root(self) -> Path:
        return Path(self.options.path)

    def tasks(self) -> Iterator[str]:
        yield self.options.path

    def shown(self, task: str) -> str:
        return Path(task).name if Path(task).exists() else task

    def load(self) -> Any:
        import datasets

        path = self.options.path
        kwargs: dict[str, Any] = {"split": self.split}
        if self.options.revision:
            kwargs["revision"] = self.options.revision
        if self.options.data_files:
            files = self.options.data_files
            kwargs["data_files"] = files if isinstance(files, str) else list(files)
        local = Path(path)
        if local.is_file():
            builder = BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise ValueError(f"cannot tell how to load {local.name}")
            return datasets.load_dataset(builder, data_files=str(local), split=self.split)
        return datasets.load_dataset(path, **kwargs)

    def read(self, task: str) -> Iterator[Example | Rejection]:
        shown = Path(task).name if Path(task).exists() else task
        try:
            rows = self.load()
        except Exception as exc:  # `datasets` raises many types; all mean "could not load"
            yield bad_input(self.stage, "unreadable dataset", f"{type(exc).__name__}: {exc}", shown)
            return
        for index, row in enumerate(rows):
            row = dict(row)
            if self.format in ("messages", "sharegpt") or (
                self.format == "auto" and ("messages" in row or "conversations" in row)
            ):
                result = self.chats.convert(row, shown, index)
            else:
                result = self.instructions.convert(row, shown, index)
            if isinstance(result, Example):
                result.metadata["row"] = index
            yield result
