"""The `command` check runs a real checker: pass, fail, timeout, and never without permission."""

from __future__ import annotations

import sys

import pytest

from runner.errors import UserError
from runner.eval.checks import CHECKS, Sample, build_checks
from runner.eval.checks.command import CommandCheck, network_isolation
from tests.helpers import options

# A checker people would write: does the extracted file parse as Python?
PARSE_PY = [sys.executable, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", "{file}"]


def run_command(spec: dict, answer: str):
    checks = build_checks([options(CHECKS, spec)], allow_commands=True)
    return checks.run(Sample("t", [], "", answer))["command"]


def test_command_passes_on_good_code():
    result = run_command(
        {"type": "command", "run": PARSE_PY, "file": "a.py"}, "```python\nx = 1\n```"
    )
    assert result.passed, result.reason


def test_command_fails_with_status_and_last_output_line():
    result = run_command(
        {"type": "command", "run": PARSE_PY, "file": "a.py"}, "```python\ndef f(:\n```"
    )
    assert not result.passed
    assert result.reason.startswith(f"`{sys.executable}` exited with status 1: SyntaxError")


def test_command_times_out():
    spec = {"type": "command", "run": ["sleep", "20"], "timeout": 0.5}
    result = run_command(spec, "x")
    assert (result.passed, result.reason) == (False, "timed out after 0.5 s")


def test_command_sees_only_the_extracted_code_in_a_fresh_folder(tmp_path):
    out = tmp_path / "seen.txt"
    script = f"import os, shutil; shutil.copy('answer.zig', {str(out)!r}); print(os.listdir('.'))"
    spec = {"type": "command", "run": [sys.executable, "-c", script], "file": "answer.zig"}
    result = run_command(spec, "Text.\n```zig\nconst a = 1;\n```\n```python\nx = 1\n```")
    assert result.passed, result.reason
    assert out.read_text() == "const a = 1;\n"


def test_commands_never_run_without_the_recipes_permission(tmp_path):
    marker = tmp_path / "ran"
    spec = {"type": "command", "run": ["touch", str(marker)]}
    with pytest.raises(UserError, match=r"eval.checks\[1\].*eval.allow_commands is false"):
        build_checks(
            [options(CHECKS, {"type": "stops"}), options(CHECKS, spec)], allow_commands=False
        )
    with pytest.raises(UserError, match="eval.allow_commands: true"):
        CommandCheck(options(CHECKS, spec))  # no code path around build_checks either
    assert not marker.exists()
    # The same spec with permission does run, so the test above can fail.
    assert run_command(spec, "x").passed and marker.exists()


def test_network_is_cut_off_where_unshare_works():
    prefix, note = network_isolation()
    if not prefix:
        assert "WITH network access" in note
        pytest.skip("unshare --net is not available on this machine")
    # In a fresh network namespace the only interface is a loopback that is down.
    script = "import socket; print(socket.if_nameindex())"
    spec = {
        "type": "command",
        "run": [sys.executable, "-c", script + "; assert len(socket.if_nameindex()) == 1"],
    }
    assert run_command(spec, "x").passed
