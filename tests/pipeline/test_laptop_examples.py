"""Every shipped example recipe runs end to end on this CPU with `--laptop`: its real sources,
filters, template and exports, with its family's tiny model; every GGUF loads and ends its turn
where training taught it (the smoke test, on training prompts, with the stop tested at the end of
the reference answer: a random tiny model cannot generalize or reproduce whole answers in 80
steps), and the evaluation runs. meton-v2 continues from meton's run folder: the continue loop is
tested end to end in tests/iterate/test_continue_training.py. meton-gguf and qi-ollama are meton
and qi with a GGUF / Ollama base, which --laptop swaps for the same tiny model as theirs (the
GGUF base path is tested in tests/export/test_gguf_base.py).

hyperswitch (DeepSeek-Coder with a teacher that is not there and fill-in-the-middle rows) is the
hard one: its template puts a newline between an answer and <|EOT|>, and its answers end with a
closing code fence, so whether a newline ends the turn depends on the token before it. The tiny
model learns that only because tiny:deepseek-coder is built with a previous-token head
(tests/models/test_previous_token_head.py); without one it put <|EOT|> second behind another
fence after 80, 200 or 300 steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    p
    for p in sorted((ROOT / "recipes" / "examples").glob("*.yaml"))
    if p.stem not in ("meton-v2", "meton-gguf", "qi-ollama")
]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_end_to_end_on_a_laptop(path, tmp_path):
    argv = [sys.executable, "-m", "runner.cli", "run", str(path), "--laptop"]
    out = subprocess.run(
        [*argv, "--runs-dir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "--laptop: warning" in text
    assert "run folder:" in text and "GGUF:" in text
    latest = next(tmp_path.glob("*/latest"))
    smoke = json.loads((latest / "smoke" / "smoke.json").read_text())
    assert smoke["stop_test"] == "reference"
    for kind, model in smoke["models"].items():
        assert model["loads"], kind
        assert not model["failures"], (kind, model["failures"])
        for answer in model["answers"]:
            assert answer["checks"]["ends_after_reference"], (kind, answer["reference_end"])
    assert "smoke test: turns end where the reference answers end" in text
