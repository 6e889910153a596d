"""`type: hf_dataset`: anything the `datasets` library loads (a local folder or file, or a hub id)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.data.example import Example
from runner.data.outcome import Rejection, bad_input
from runner.data.registries import SOURCES
from runner.data.sources.base import Source
from runner.data.sources.conversations import ConversationsSource
from runner.data.sources.instructions import InstructionsSource

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


@SOURCES.register("hf_dataset")
class HFDatasetSource(Source):
    """Rows are mapped by ``format``: ``messages`` and ``sharegpt`` as conversations, ``alpaca``
    and ``prompt_completion`` as instructions; ``auto`` decides per row by its columns."""

    records = True

    def __init__(self, spec: dict[str, Any], name: str, log_file=None):
        super().__init__(spec, name, log_file)
        self.split = spec.get("split", "train")
        self.format = spec.get("format", "auto")
        conversation_format = {"messages": "openai", "sharegpt": "sharegpt"}.get(
            self.format, "auto"
        )
        self.chats = ConversationsSource(
            {
                "path": spec["path"],
                "format": conversation_format,
                "metadata": spec.get("metadata") or {},
            },
            name,
        )
        instruction_format = (
            self.format if self.format in ("alpaca", "prompt_completion") else "auto"
        )
        self.instructions = InstructionsSource(
            {
                "path": spec["path"],
                "format": instruction_format,
                "metadata": spec.get("metadata") or {},
            },
            name,
        )
        for helper in (self.chats, self.instructions):
            helper.stage = self.stage

    @property
    def root(self) -> Path:
        return Path(self.spec["path"])

    def tasks(self) -> Iterator[str]:
        yield self.spec["path"]

    def load(self) -> Any:
        import datasets

        path = self.spec["path"]
        kwargs: dict[str, Any] = {"split": self.split}
        if self.spec.get("revision"):
            kwargs["revision"] = self.spec["revision"]
        if self.spec.get("data_files"):
            kwargs["data_files"] = self.spec["data_files"]
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
