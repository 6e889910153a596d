"""What a user sees: a real `recipe run` in a pipe and in a real terminal (tmux) shows one line
per stage and our own progress, no library warnings or native chatter (those go to the stage
logs), and ends with the summary: run folder, GGUFs, the `ollama create` command, the headline
evaluation numbers, the report and what to do next."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.pipeline.conftest import OVERRIDES, QUICKSTART, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("quickstart-train")]

# One epoch does not teach the tiny model to stop; the smoke test then reports, not fails.
SETS = [*OVERRIDES, "eval.smoke.require_stop=false", "eval.max_prompts=3"]
NOISE = re.compile(
    r"Warning|warnings\.warn|Failed to load|Loading weights|n_ctx_train|it/s\]|%\|",
)
SUMMARY = ("run folder:", "GGUF:", "Ollama: ollama create", "eval (base -> fine-tuned):", "report:")


def argv(root, *extra):
    sets = [a for s in SETS for a in ("--set", s)]
    command = [sys.executable, "-m", "runner.cli", "run", str(QUICKSTART)]
    return [*command, "--runs-dir", str(root), *sets, *extra]


def check_screen(text: str) -> None:
    noisy = [line for line in text.splitlines() if NOISE.search(line)]
    assert noisy == [], "\n".join(noisy)
    # Whichever of the two runs comes second finds the stages before eval finished.
    for stage in ("merge", "gguf", "ollama", "smoke"):
        assert re.search(rf"^{stage}: (done in [0-9.]+s|cached)$", text, re.M), (stage, text)
    assert re.search(r"^eval: done in [0-9.]+s$", text, re.M), text
    summary = text[text.index("run folder:") :]
    for line in SUMMARY:
        assert line in summary, (line, summary)
    assert "next:" in summary and "recipe report" in summary


def test_a_run_in_a_pipe_is_quiet_and_ends_with_the_summary(trained_quickstart):
    out = subprocess.run(
        argv(trained_quickstart.root, "--force", "eval"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    check_screen(text)
    # The stage logs keep what the terminal does not show.
    logs = (trained_quickstart.run_dir.parent / "latest" / "logs").glob("*.log")
    assert any(p.stat().st_size > 0 for p in logs)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_run_in_a_real_terminal_is_quiet_and_ends_with_the_summary(trained_quickstart, tmp_path):
    session = f"recipe-{uuid.uuid4().hex[:8]}"
    command = " ".join(f"'{a}'" for a in argv(trained_quickstart.root, "--force", "eval"))
    script = tmp_path / "run.sh"
    script.write_text(f"cd '{ROOT}' && {command}; echo EXIT=$?; sleep 600\n")
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "60", "bash", str(script)],
        check=True,
    )
    try:
        deadline = time.monotonic() + 1800
        screen = ""
        while time.monotonic() < deadline:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-J", "-S", "-2000", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "EXIT=" in screen:
                break
            time.sleep(2)
        assert "EXIT=0" in screen, screen
        check_screen(screen)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_training_progress_in_a_pipe_is_plain_lines(trained_quickstart):
    """Without a terminal the train stage prints a plain line per tenth of its steps (the first,
    killed attempt of the shared run wrote its output to a file)."""
    text = (trained_quickstart.root / "first-attempt.log").read_text()
    assert re.search(r"^train: step \d+/\d+, loss \d+\.\d{4}", text, re.M), text
    noisy = [line for line in text.splitlines() if NOISE.search(line)]
    assert noisy == [], "\n".join(noisy)
