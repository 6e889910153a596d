"""Errors that reach the user as a message and an exit status, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad recipe, missing file, unsupported setting). Exit 2."""

    exit_code = 2


class StageError(Exception):
    """A stage of a run failed for a reason we can explain (tool failed, check failed). Exit 1."""

    exit_code = 1

    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message


class GateFailed(StageError):
    """The evaluation gate was missed: the run finished but must not pass CI. Exit 3."""

    exit_code = 3
