"""The recipe loader under hostile input: 10,000 mutated shipped recipes (no traceback, exit 0
or 2, every error names its file), and how fast an alias bomb and a 50 MB file are refused.

The fuzzer is the one the test suite runs with a few hundred cases (tests/recipe/fuzzing.py).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = int(os.environ.get("BENCH_FUZZ_CASES", "10000"))


def fuzz(cases: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.recipe.fuzzing import mutated_recipe, validate, workspace

    statuses: Counter[str] = Counter()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = workspace(Path(tmp))

        @settings(
            max_examples=cases,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=mutated_recipe())
        def one(case: tuple[str, str]) -> None:
            name, text = case
            result = validate(root, name, text)
            problem = result.problem()
            statuses["traceback" if result.crashed else f"exit {result.status}"] += 1
            if problem is not None:
                problems.append(f"{name}: {problem.splitlines()[0]}")

        start = time.perf_counter()
        one()
        seconds = time.perf_counter() - start
    total = sum(statuses.values())
    print(
        f"   fuzzer: {total} mutated recipes in {seconds:.0f} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        + f"; {len(problems)} problem(s) (target: 0 tracebacks, every error names its file)"
    )
    for problem in problems[:5]:
        print(f"     {problem}")


def refusal(name: str, path: Path) -> None:
    """Time and peak memory of `recipe validate` on one hostile file, as a fresh process."""
    # VmHWM is this process's own peak (ru_maxrss would include what the parent held at fork).
    code = (
        "import sys, time; t = time.perf_counter(); "
        "from runner.cli import main; status = main(['validate', sys.argv[1]]); "
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(status, time.perf_counter() - t, hwm, file=sys.stderr)"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - start
    status, inside, peak_kb = out.stderr.strip().splitlines()[-1].split()
    refused = "refused" if status == "2" else f"NOT REFUSED (exit {status})"
    print(
        f"   {name}: {refused} in {float(inside) * 1000:.0f} ms after start-up "
        f"({wall * 1000:.0f} ms for the whole process), peak {int(peak_kb) / 1024:.0f} MB"
    )


def main() -> None:
    from tests.recipe.test_loader_safety import alias_bomb

    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.yaml"
        bomb.write_text(alias_bomb())
        refusal("alias bomb (9 levels of 9 aliases)", bomb)
        huge = Path(tmp) / "huge.yaml"
        with huge.open("wb") as handle:
            handle.write(b"recipe: 1\n" + b"# padding\n" * (5 * 1024 * 1024))
        refusal("50 MB recipe file", huge)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fuzz(CASES)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"   fuzzer peak memory: {after / 1024:.0f} MB (was {before / 1024:.0f} MB before)")
