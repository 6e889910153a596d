"""What a stage receives and what it returns.

A stage is a function ``run(recipe, ctx) -> Outcome``. ``recipe`` is a view of the typed recipe
that answers only the keys the stage declares (``runner.run.stages``), so its cache key, built
from exactly those keys, cannot miss one; ``ctx.input(name)`` hands out the folder of an upstream
stage only when the stage declares that it reads it. The stage writes into ``ctx.out`` (a fresh
partial folder renamed into place when it returns) and returns an ``Outcome``: its summary, its
outputs as paths relative to its own folder, notes, and, when it finished but the run must not
pass (a missed evaluation gate), a ``Failure``. The pipeline records the outcome and acts on it
without knowing which stage produced it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class UndeclaredRead(RuntimeError):
    """A stage read a recipe key or a stage folder it does not declare: a bug in the runner,
    since its cache key would miss what it read."""


@dataclass(frozen=True)
class Failure:
    """A finished stage whose result fails the run (its output is kept and reused)."""

    message: str
    exit_code: int = 1
    kind: str = "failed"  # a word for the summary line: "gate missed"

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "exit_code": self.exit_code, "kind": self.kind}


@dataclass
class Outcome:
    """What a stage returns: numbers for the manifest, outputs relative to its folder, notes."""

    summary: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failure: Failure | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "outputs": self.outputs,
            "notes": self.notes,
            "failure": self.failure.to_json() if self.failure else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        failure = data.get("failure")
        return cls(
            summary=dict(data.get("summary") or {}),
            outputs=dict(data.get("outputs") or {}),
            notes=list(data.get("notes") or []),
            failure=Failure(**failure) if failure else None,
        )


def stage_log(stage_folder: Path, stage: str) -> Path:
    """Where a stage's log lives inside its output folder (a subfolder: never taken for one of
    the stage's files, such as a merged model's, by code that lists them)."""
    return stage_folder / "logs" / f"{stage}.log"


@dataclass
class StageContext:
    """Handed to ``run(recipe, ctx)`` of each stage.

    ``out`` is a fresh temporary folder that the pipeline renames into place when the stage
    returns; a crash leaves the finished outputs of earlier stages untouched. ``inputs`` maps
    each upstream stage the spec declares to its finished folder, or to None when this recipe
    does not run that stage.
    """

    stage: str
    out: Path
    run_dir: Path
    inputs: dict[str, Path | None] = field(default_factory=dict)
    key: str = ""  # the stage's cache key
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    def input(self, name: str) -> Path | None:
        """The finished folder of upstream stage ``name`` (None when this recipe skips it)."""
        if name not in self.inputs:
            raise UndeclaredRead(
                f"the {self.stage} stage read the {name} stage's output without declaring it "
                f"(add it to `after` in runner/run/stages.py)"
            )
        return self.inputs[name]

    def require(self, name: str) -> Path:
        """``input(name)``, for a stage this one cannot work without."""
        folder = self.input(name)
        if folder is None:
            from runner.errors import StageError

            raise StageError(self.stage, f"needs the {name} stage's output, which this run lacks")
        return folder

    @property
    def log_file(self) -> Path:
        """The stage's log, inside its own output folder: it is renamed into place and reused with
        the output, and each run folder's ``logs/<stage>.log`` links to it."""
        return stage_log(self.out, self.stage)


class RecipeView:
    """A read-only view of a recipe that answers only the declared keys.

    ``reads`` are dotted keys: a whole section (``train``) or keys inside one (``model.base``);
    ``exports`` the export target types the stage reads. ``name`` (which names the run folder
    and the artifacts) and ``path`` are always readable.
    """

    _ALWAYS = frozenset({"name", "path"})

    def __init__(
        self, recipe: Any, stage: str, reads: Iterable[str], exports: Iterable[str] = (), at=""
    ):
        self._recipe = recipe
        self._stage = stage
        self._reads = tuple(reads)
        self._exports = tuple(exports)
        self._at = at

    def __getattr__(self, name: str) -> Any:
        key = f"{self._at}{name}"
        if (not self._at and name in self._ALWAYS) or key in self._reads:
            return getattr(self._recipe, name)
        if any(r.startswith(key + ".") for r in self._reads):
            value = getattr(self._recipe, name)
            if value is None:  # an optional section the recipe leaves out (`continue_from`)
                return None
            return RecipeView(value, self._stage, self._reads, at=key + ".")
        raise UndeclaredRead(
            f"the {self._stage} stage read recipe key {key!r} without declaring it "
            f"(it declares: {', '.join(self._reads) or 'nothing'}; see runner/run/stages.py)"
        )

    def exports(self, type_name: str) -> list[Any]:
        if type_name not in self._exports:
            raise UndeclaredRead(
                f"the {self._stage} stage read `export: - type: {type_name}` without declaring "
                "it (runner/run/stages.py)"
            )
        return self._recipe.exports(type_name)

    def __repr__(self) -> str:
        return f"<recipe view of {self._stage}: {', '.join(self._reads)}>"
