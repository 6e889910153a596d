"""The one place subprocesses are started: argv lists, logged, dry-runnable, explained on failure."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from runner.errors import StageError


class CommandFailed(StageError):
    """A command exited non-zero (or was killed at its timeout); ``status`` is its exit status."""

    def __init__(self, stage: str, message: str, *, status: int, timed_out: bool = False):
        super().__init__(stage, message)
        self.status = status
        self.timed_out = timed_out


def format_command(argv: Sequence[str | os.PathLike]) -> str:
    return shlex.join(str(a) for a in argv)


def run(
    argv: Sequence[str | os.PathLike],
    *,
    stage: str,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    dry_run: bool = False,
    timeout: float | None = None,
) -> int:
    """Run ``argv``, appending its output to ``log_file`` and feeding each line to ``on_line``.

    ``env`` entries are added to the current environment. On a non-zero exit, raises a
    ``StageError`` that names the command, its exit status and the log file.
    """
    command = format_command(argv)
    if dry_run:
        print(f"[dry-run] {command}")
        return 0
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    with log_file.open("a", encoding="utf-8") as log:
        log.write(f"$ {command}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                cwd=cwd,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
                # Its own process group, so stopping it also stops what it launched
                # (accelerate's training workers).
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StageError(stage, f"cannot run `{command}`: {exc.strerror}") from None
        assert proc.stdout is not None
        # The timeout is enforced by a watchdog: reading output blocks while a hung command keeps
        # its stdout open, so waiting after the read loop would never time out.
        expired = threading.Event()

        def kill_on_timeout() -> None:
            expired.set()
            _kill_group(proc)

        watchdog = threading.Timer(timeout, kill_on_timeout) if timeout else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            for line in proc.stdout:
                log.write(line)
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            status = proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
    if expired.is_set():
        raise CommandFailed(
            stage,
            f"`{command}` did not finish within {timeout:g} s and was stopped; see the log: {log_file}",
            status=status,
            timed_out=True,
        )
    if status != 0:
        raise CommandFailed(
            stage,
            f"`{command}` exited with status {status}; see the log: {log_file}",
            status=status,
        )
    return status


@contextmanager
def background(
    argv: Sequence[str | os.PathLike],
    *,
    stage: str,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = 10.0,
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` in the background while the ``with`` block runs (a local server), its
    output appended to ``log_file``; then stop it and everything it started (SIGTERM, then
    SIGKILL after ``stop_timeout`` s)."""
    command = format_command(argv)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8") as log:
        log.write(f"$ {command} &\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StageError(stage, f"cannot run `{command}`: {exc.strerror}") from None
        try:
            yield proc
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    proc.terminate()
                try:
                    proc.wait(timeout=stop_timeout)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    proc.wait()


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a command and every process in its group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def python_argv(*args: str) -> list[str]:
    """argv for running a module or script with this interpreter."""
    return [sys.executable, *args]
