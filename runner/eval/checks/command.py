"""The ``command`` check: run a user-given checker (``zig ast-check {file}``, a test command) on
the answer's code, in a fresh temporary folder, with a timeout and without network.

Recipes are shared between projects, so a recipe's commands run only when that recipe sets
``eval.allow_commands: true``; ``build_checks`` refuses before anything runs, and this class
refuses again on its own so that no code path can run a command without the permission.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from runner import proc
from runner.errors import StageError, UserError
from runner.eval.checks import CHECKS, Check, CheckResult, Sample
from runner.eval.codeblocks import extract_code
from runner.recipe.fields import Operation

_PROXY_VARS = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")
_EXTENSION_LANGUAGE = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".rs": "rust",
    ".zig": "zig",
}
# Exit status of coreutils `timeout` when the time ran out (124), or when it had to SIGKILL (137).
_TIMED_OUT = (124, 137)


@functools.cache
def network_isolation() -> tuple[list[str], str]:
    """The argv prefix that cuts the network off, and a note saying what protects the command.

    ``unshare -n`` gives the command an empty network namespace (root, or an unprivileged user
    namespace with ``-r``). Where neither works, commands run with proxy variables removed, which
    keeps well-behaved tools offline but is no sandbox; the note says so in the report.
    """
    if shutil.which("unshare"):
        for prefix in (["unshare", "--net"], ["unshare", "--map-root-user", "--net"]):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    proc.run([*prefix, "true"], stage="eval", log_file=Path(tmp) / "probe.log")
                except StageError:
                    continue
            return prefix, f"commands ran without network (`{' '.join(prefix)}`)"
    return [], (
        "commands ran WITH network access: `unshare --net` is not available here, so only proxy "
        "variables were removed from their environment"
    )


@CHECKS.register
class CommandCheck(Check):
    """Passes when the command exits 0; fails on another status or on the timeout."""

    class Options(Operation):
        """Run a checker (e.g. `zig ast-check {file}`) on the answer's code; needs
        eval.allow_commands."""

        type: Literal["command"]
        run: tuple[str, ...] = Field(min_length=1)
        """argv; `{file}` is the extracted code's path."""
        file: str = "answer.txt"
        """File name the extracted code is written to."""
        timeout: float = Field(30, gt=0)
        """Seconds before the command is stopped (and the check fails)."""

        @field_validator("file")
        @classmethod
        def _plain_name(cls, name: str) -> str:
            if Path(name).name != name or name in ("", ".", "..") or "\x00" in name:
                raise ValueError(f"file {name!r} must be a plain file name")
            return name

    def __init__(self, options: Options, *, allowed: bool = False):
        if not allowed:
            raise UserError(
                "`command` checks need eval.allow_commands: true in the recipe that runs them"
            )
        super().__init__(options)
        self.argv = list(options.run)
        self.file_name = options.file
        self.timeout = float(options.timeout)
        self.language = _EXTENSION_LANGUAGE.get(Path(self.file_name).suffix)
        self.log_file: Path | None = None  # the stage points this at logs/eval.log
        self.prefix, note = network_isolation()
        self.notes = [note]

    def command_argv(self, folder: Path) -> list[str]:
        """The full argv: timeout, network isolation, proxy-free env, then the user's command."""
        user = [a.replace("{file}", str(folder / self.file_name)) for a in self.argv]
        unset = [arg for var in _PROXY_VARS for arg in ("-u", var, "-u", var.upper())]
        timeout = ["timeout", "--kill-after=2", f"{self.timeout:g}"]
        return [*timeout, *self.prefix, "env", *unset, *user]

    def __call__(self, sample: Sample) -> CheckResult:
        with tempfile.TemporaryDirectory(prefix="recipe-check-") as tmp:
            folder = Path(tmp)
            (folder / self.file_name).write_text(extract_code(sample.answer, self.language))
            output: list[str] = []
            try:
                proc.run(
                    self.command_argv(folder),
                    stage="eval",
                    log_file=self.log_file or folder / "command.log",
                    cwd=folder,
                    on_line=output.append,
                    timeout=self.timeout + 10,
                )
            except proc.CommandFailed as exc:
                status = exc.status
                if exc.timed_out or status in _TIMED_OUT:
                    return CheckResult(False, f"timed out after {self.timeout:g} s")
                last = next((line for line in reversed(output) if line.strip()), "")
                tail = f": {last.strip()[:120]}" if last else ""
                return CheckResult(False, f"`{self.argv[0]}` exited with status {status}{tail}")
        return CheckResult(True, f"`{self.argv[0]}` exited with status 0")
