"""Turning recipe problems into `FILE:LINE:COL: key.path: message` lines with the offending line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runner.errors import UserError


@dataclass(frozen=True)
class Located:
    file: str  # a recipe file, or "--set"
    line: int
    column: int
    key: str
    message: str
    source_line: str | None = None
    warning: bool = False

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        prefix = "warning: " if self.warning else ""
        text = f"{where}: {prefix}{self.key}: {self.message}"
        if self.source_line is not None:
            text += f"\n    {self.line:>4} | {self.source_line}"
        return text


def display_path(path: Path | str) -> str:
    """A path relative to the working directory when it is below it, as users typed it."""
    path = Path(path)
    try:
        return (
            os.path.relpath(path)
            if path.is_absolute() and not os.path.relpath(path).startswith("..")
            else str(path)
        )
    except ValueError:
        return str(path)


class RecipeErrors(UserError):
    """Every error found in a recipe, reported at once."""

    def __init__(self, problems: list[Located]):
        self.problems = problems
        count = len(problems)
        lines = [p.render() for p in problems]
        lines.append(f"{count} error{'s' if count != 1 else ''} in recipe")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return self.args[0]
