"""What every pipeline stage receives: where to write, where earlier stages wrote, how to log."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# The stages of a run, in order, and the folder each writes under the run folder.
STAGE_DIRS: dict[str, str] = {
    "data": "data",
    "train": "train",
    "merge": "merged",
    "gguf": "gguf",
    "ollama": "ollama",
    "smoke": "smoke",
    "eval": "eval",
    "hub": "hub",
}


@dataclass
class StageContext:
    """Handed to ``run(recipe, ctx)`` of each stage.

    ``out`` is a fresh temporary folder that the pipeline renames into place when the stage
    returns; a crash leaves the finished outputs of earlier stages untouched. ``stage_dir(name)``
    is where an earlier stage's finished output lives.
    """

    run_dir: Path
    out: Path
    stage: str
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / STAGE_DIRS[name]

    @property
    def log_file(self) -> Path:
        """The stage's log, inside its own output folder: it is renamed into place and reused with
        the output, and each run folder's ``logs/<stage>.log`` links to it."""
        return stage_log(self.out, self.stage)


def stage_log(stage_folder: Path, stage: str) -> Path:
    """Where a stage's log lives inside its output folder (a subfolder: never taken for one of
    the stage's files, such as a merged model's, by code that lists them)."""
    return stage_folder / "logs" / f"{stage}.log"
