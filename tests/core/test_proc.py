"""runner.proc: every subprocess is logged, explained on failure and bounded in time."""

from __future__ import annotations

import sys
import time

import pytest

from runner.proc import CommandFailed, capture, run


def test_output_is_logged_and_streamed(tmp_path):
    lines = []
    log = tmp_path / "logs" / "x.log"
    status = run(
        [sys.executable, "-c", "print('hello'); print('world')"],
        stage="t",
        log_file=log,
        on_line=lines.append,
    )
    assert status == 0
    assert lines == ["hello", "world"]
    text = log.read_text()
    assert text.startswith("$ ") and "hello\nworld\n" in text


def test_failure_names_command_status_and_log(tmp_path):
    log = tmp_path / "x.log"
    with pytest.raises(CommandFailed) as caught:
        run([sys.executable, "-c", "import sys; sys.exit(3)"], stage="train", log_file=log)
    assert caught.value.status == 3
    assert "exited with status 3" in str(caught.value) and str(log) in str(caught.value)
    assert str(caught.value).startswith("train: ")


def test_timeout_stops_a_command_that_keeps_its_output_open(tmp_path):
    with pytest.raises(CommandFailed) as caught:
        run(
            [sys.executable, "-c", "import time; print('start', flush=True); time.sleep(60)"],
            stage="eval",
            log_file=tmp_path / "x.log",
            timeout=1,
        )
    assert caught.value.timed_out
    assert "did not finish within 1 s" in str(caught.value)


def test_missing_program_is_a_stage_error(tmp_path):
    with pytest.raises(Exception, match="cannot run `no-such-program-xyz`"):
        run(["no-such-program-xyz"], stage="t", log_file=tmp_path / "x.log")


def test_dry_run_prints_instead_of_running(tmp_path, capsys):
    assert (
        run(["rm", "-rf", str(tmp_path)], stage="t", log_file=tmp_path / "x.log", dry_run=True) == 0
    )
    assert tmp_path.exists()
    assert "[dry-run] rm -rf" in capsys.readouterr().out


def test_timeout_also_stops_the_commands_children(tmp_path):
    marker = tmp_path / "child-survived"
    child = f"import time, pathlib; time.sleep(3); pathlib.Path({str(marker)!r}).write_text('x')"
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    with pytest.raises(CommandFailed):
        run([sys.executable, "-c", parent], stage="train", log_file=tmp_path / "x.log", timeout=1)
    time.sleep(4)
    assert not marker.exists()


def test_capture_returns_output_without_logging_it(tmp_path):
    log = tmp_path / "x.log"
    out = capture(["printf", "secret-diff"], stage="data", log_file=log)
    assert out == b"secret-diff"
    assert log.read_text() == "$ printf secret-diff  (output captured, not logged)\n"
    with pytest.raises(CommandFailed, match=r"`ls /nope` exited with status 2: ls: cannot"):
        capture(["ls", "/nope"], stage="data", log_file=log)
