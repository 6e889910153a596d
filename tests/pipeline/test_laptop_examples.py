"""Every shipped example recipe runs end to end on this CPU with `--laptop`: its real sources,
filters, template and exports, with its family's tiny model; every GGUF loads and stops on its
end token (the smoke test), and the evaluation runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "recipes" / "examples").glob("*.yaml"))

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
