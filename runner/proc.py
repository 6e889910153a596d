"""The one place subprocesses are started: argv lists, logged, dry-runnable, explained on failure."""

from __future__ import annotations

import contextlib
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


def capture(
    argv: Sequence[str | os.PathLike],
    *,
    stage: str,
    log_file: Path | None,
    cwd: Path | None = None,
    timeout: float | None = 600,
) -> bytes:
    """Run ``argv`` and return its standard output, which is NOT copied to the log: it is data
    (a diff that may hold a credential the data stage redacts, authors' addresses), not a
    record of what ran. The command is logged; on failure its error output is, and a
    ``CommandFailed`` names the command and its status."""
    command = format_command(argv)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    log = log_file.open("a", encoding="utf-8") if log_file is not None else None
    try:
        if log is not None:
            log.write(f"$ {command}  (output captured, not logged)\n")
        try:
            done = subprocess.run(
                [str(a) for a in argv], cwd=cwd, capture_output=True, timeout=timeout
            )
        except FileNotFoundError as exc:
            raise StageError(stage, f"cannot run `{command}`: {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise CommandFailed(
                stage, f"`{command}` did not finish within {timeout:g} s", status=-9, timed_out=True
            ) from None
        if done.returncode != 0:
            error = done.stderr.decode("utf-8", "replace").strip()
            if log is not None:
                log.write(error + "\n")
            raise CommandFailed(
                stage,
                f"`{command}` exited with status {done.returncode}: {error[-500:]}",
                status=done.returncode,
            )
        return done.stdout
    finally:
        if log is not None:
            log.close()


def probe(
    argv: Sequence[str | os.PathLike], *, timeout: float = 60.0, cwd: Path | None = None
) -> tuple[int, str]:
    """Run a short command (a scheduler's CLI) and return its exit status and its output
    (stdout, then stderr). A command that does not answer in ``timeout`` seconds is stopped and
    reported as status 124, like coreutils' ``timeout``."""
    command = format_command(argv)
    try:
        done = subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        return 127, f"cannot run `{command}`: {exc.strerror}"
    except subprocess.TimeoutExpired:
        return 124, f"`{command}` did not answer within {timeout:g} s"
    return done.returncode, (done.stdout + done.stderr).strip()


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a command and every process in its group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def python_argv(*args: str) -> list[str]:
    """argv for running a module or script with this interpreter."""
    return [sys.executable, *args]


def start(
    argv: Sequence[str | os.PathLike],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start ``argv`` in the background, in its own session (so ``stop_tree`` stops it and what
    it launched together), its output appended to ``log_file`` after the command line."""
    command = format_command(argv)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8") as log:
        log.write(f"$ {command}\n")
        log.flush()
        try:
            return subprocess.Popen(
                [str(a) for a in argv],
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StageError("job", f"cannot run `{command}`: {exc.strerror}") from None


def stop_tree(pid: int, *, grace: float = 10.0) -> None:
    """Stop a process started by ``start`` and everything it started: SIGTERM to its process
    group (``recipe run`` then kills the tool it is running, in that tool's own group), and
    after ``grace`` seconds SIGKILL to whatever of the group and of its descendants is left,
    including tools that live in process groups of their own."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    _, alive = psutil.wait_procs(tree, timeout=grace)
    # Children started after the first look (a tool launched just before SIGTERM) too.
    left = list(alive)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            left.extend(p for p in process.children(recursive=True) if p not in left)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for process in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(left, timeout=grace)
