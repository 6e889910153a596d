"""`recipe validate` on shipped recipes: median wall time of the whole command (target < 0.3 s).

Measured as a fresh process each time, the way a user or an editor integration runs it, so import
cost counts: heavy modules (torch, transformers, axolotl) must stay out of validation.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7


def main() -> None:
    recipe = ROOT / "recipes" / "quickstart.yaml"
    argv = [sys.executable, "-m", "runner.cli", "validate", "-q", str(recipe)]
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    verdict = "ok" if median < 0.3 else "OVER TARGET"
    print(
        f"   recipe validate quickstart: median {median * 1000:.0f} ms over {RUNS} runs "
        f"(min {min(times) * 1000:.0f} ms, target < 300 ms) {verdict}"
    )
