"""The replay source: a seeded share of a parent run's training split, mixed into a new run's data.

Not a `sources:` type a recipe writes: the data stage adds it when ``continue_from.replay`` is set
(``runner/train/continue_from.py``), so that a new version keeps seeing some of what the old one
learned and forgets less of it. The rows are the parent's canonical ``train.jsonl`` rows (system
prompt included, as the parent trained them); they pass this recipe's filters like any example
(a duplicate of a new example is dropped as usual) and always go to the training split: the
parent trained on them, so they cannot test anything.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from runner.data.example import Example
from runner.data.outcome import Rejection, bad_input
from runner.data.reading import display_path
from runner.data.registries import SOURCES
from runner.data.sources.base import Source, SourceOptions
from runner.dataset import row_problem
from runner.recipe.fields import Seed

NAME = "replay"


@SOURCES.register
class ReplaySource(Source):
    """A seeded sample of ``fraction`` of the rows of a parent's ``train.jsonl``."""

    records = True
    internal = True  # added by the data stage for continue_from.replay, never written in sources:
    pinned_split = "train"  # the parent trained on these rows

    class Options(SourceOptions):
        """The parent's training split to replay (built by the data stage)."""

        type: Literal["replay"]
        fraction: float = Field(gt=0, le=1)
        seed: Seed = 42
        parent: str = ""
        """The parent run, as the report names it."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.fraction = options.fraction
        self.seed = options.seed
        self.listing: dict[str, Any] | None = None

    def chosen(self) -> tuple[list[str], list[int]]:
        """The parent's non-blank lines and the sorted indexes of the replayed ones (the same
        in the main process and in every worker: a seeded sample)."""
        lines = [
            line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        count = round(len(lines) * self.fraction)
        picked = sorted(random.Random(self.seed).sample(range(len(lines)), count))
        return lines, picked

    def tasks(self) -> Iterator[str]:
        lines, picked = self.chosen()
        self.listing = {
            "replay": True,
            "parent": self.options.parent,
            "parent_train_split": str(self.path),
            "parent_examples": len(lines),
            "fraction": self.fraction,
            "seed": self.seed,
            "replayed": len(picked),
        }
        yield str(self.path)

    def read(self, task: str) -> Iterator[Example | Rejection]:
        shown = display_path(Path(task), self.path.parent)
        lines, picked = self.chosen()
        for index in picked:
            line = index + 1
            try:
                row = json.loads(lines[index])
            except ValueError as exc:
                yield bad_input(self.stage, "malformed JSON", str(exc), shown, line)
                continue
            problem = row_problem(row)
            if problem:
                yield bad_input(self.stage, "not a training row", problem, shown, line, raw=row)
                continue
            meta = {k: v for k, v in (row.get("meta") or {}).items() if k != "source"}
            meta.update(self.base_metadata(shown, line))
            meta["replayed_from"] = self.options.parent
            meta["parent_source"] = (row.get("meta") or {}).get("source")
            yield Example(
                id=f"replay:{row.get('id', line)}",
                source=self.name,
                messages=[{"role": m["role"], "content": m["content"]} for m in row["messages"]],
                metadata=meta,
            )


def replay_sources(recipe: Any) -> list[Any]:
    """The replay source's options when ``continue_from.replay`` is set (else none)."""
    section = recipe.continue_from
    if section is None or section.replay is None:
        return []
    from runner.errors import UserError
    from runner.train.continue_from import find_parent

    parent = find_parent(section.run)
    split = parent.train_split()
    if split is None:
        raise UserError(
            f"continue_from.replay: {parent.path} has no training split to replay (it needs "
            "the parent's run folder)"
        )
    taken = {s.name for s in recipe.sources}
    name = NAME if NAME not in taken else f"parent-{NAME}"
    described = " ".join(str(x) for x in (parent.name, parent.version) if x) or str(parent.path)
    return [
        ReplaySource.Options(
            type="replay",
            path=str(split),
            name=name,
            fraction=section.replay.fraction,
            seed=section.replay.seed,
            parent=f"{described} ({parent.path})",
        )
    ]
