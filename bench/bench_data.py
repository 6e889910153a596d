"""`make bench`: build a dataset from >= 50 MB of real Python (the standard library, plus the
installed `transformers` package to pass 50 MB) with exact and near dedupe, the secret scan and
the syntax check on; print MB/s and peak memory.

Targets (issue 3): at least 5 MB/s on a 2-core machine, peak memory under 2 GB.

The machine may be shared: the load average is printed next to the numbers, with the CPU
seconds the stage used (main process and workers), which depend far less on other work than
the wall-clock rate does. A small slice (a few stdlib packages) is measured too, for quick
before/after comparisons.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from runner.recipe.load import recipe_from_dict
from runner.run.context import StageContext

SLICE = ("email", "asyncio", "unittest", "idlelib", "json")


def corpus() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folders = [stdlib]
    try:
        import transformers

        folders.append(Path(transformers.__file__).parent)
    except ImportError:
        pass
    return folders


def recipe_for(folders: list[Path]) -> Any:
    config = {
        "recipe": 1,
        "name": "bench-data",
        "sources": [
            {
                "type": "repo",
                "name": folder.name,
                "path": str(folder),
                "include": ["**/*.py"],
                "exclude": ["site-packages/**", "dist-packages/**"],
                "max_unit_tokens": 2048,
                "extract": [{"type": "file_completion"}],
            }
            for folder in folders
        ],
        "filters": [
            {"type": "exact_dedupe"},
            {"type": "near_dedupe"},
            {"type": "syntax"},
            {"type": "secrets"},
        ],
        "split": {"train": 0.9, "val": 0.05, "test": 0.05, "seed": 42},
        "prompt": {"template": "chatml"},
        "model": {"base": "tiny:qwen2"},
        "train": {"seq_len": 2048},
    }
    return recipe_from_dict(config, Path("bench.yaml"))


def cpu_seconds() -> tuple[float, float]:
    main = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return main.ru_utime + main.ru_stime, children.ru_utime + children.ru_stime


def measure(folders: list[Path], tokens: Any) -> dict[str, Any]:
    from runner.data.build import run

    recipe = recipe_for(folders)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext(stage="data", out=Path(tmp) / "data", run_dir=Path(tmp))
        load = os.getloadavg()[0]
        cpu_before = cpu_seconds()
        start = time.perf_counter()
        summary = run(recipe, ctx, tokens=tokens, progress=sys.stderr.isatty()).summary
        seconds = time.perf_counter() - start
        cpu_after = cpu_seconds()
        report = json.loads((ctx.out / "report.json").read_text())
    return {
        "summary": summary,
        "report": report,
        "megabytes": report["input_bytes"] / 1e6,
        "seconds": seconds,
        "cpu_main": cpu_after[0] - cpu_before[0],
        "cpu_workers": cpu_after[1] - cpu_before[1],
        "load": (load, os.getloadavg()[0]),
    }


def line(name: str, m: dict[str, Any]) -> str:
    return (
        f"   {name}: {m['megabytes']:.1f} MB in {m['seconds']:.1f} s = "
        f"{m['megabytes'] / m['seconds']:.2f} MB/s; CPU main {m['cpu_main']:.1f} s, "
        f"workers {m['cpu_workers']:.1f} s; load average {m['load'][0]:.1f} -> "
        f"{m['load'][1]:.1f} on {os.cpu_count()} cores"
    )


def main() -> None:
    from runner.data.tokenizer import TokenCounter

    tokens = TokenCounter.for_base("tiny:qwen2")  # loaded before timing: a one-off cost
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    small = measure([stdlib / name for name in SLICE], tokens)
    print(line(f"slice ({', '.join(SLICE)})", small), flush=True)
    folders = corpus()
    full = measure(folders, tokens)
    report, summary = full["report"], full["summary"]
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    files = sum(s.get("files", 0) for s in report["sources"].values())
    print(
        f"   corpus: {', '.join(map(str, folders))} "
        f"({full['megabytes']:.1f} MB of .py read, {files} files)"
    )
    print(
        f"   examples: {json.dumps(report['split']['written'])}; rejected "
        f"{summary['rejected']}; secrets redacted "
        f"{report['filters'][3]['altered_items']}; token lengths counted on "
        f"{report['tokens'].get('examples_counted', 'all')}"
    )
    print(line("full corpus", full))
    print(
        f"   throughput: {full['megabytes'] / full['seconds']:.2f} MB/s on "
        f"{min(2, os.cpu_count() or 1)} worker processes (target >= 5 MB/s)"
    )
    print(
        f"   peak memory: main {peak_self:.0f} MB, largest worker {peak_children:.0f} MB "
        f"(target < 2048 MB)"
    )


if __name__ == "__main__":
    main()
