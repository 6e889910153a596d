"""`make bench`: build a dataset from >= 50 MB of real Python (the standard library, plus the
installed `transformers` package to pass 50 MB) with exact and near dedupe, the secret scan and
the syntax check on; print MB/s and peak memory.

Targets (issue 3): at least 5 MB/s on a 2-core machine, peak memory under 2 GB.
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

from runner.recipe.model import Recipe, freeze
from runner.stage import StageContext


def corpus() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folders = [stdlib]
    try:
        import transformers

        folders.append(Path(transformers.__file__).parent)
    except ImportError:
        pass
    return folders


def main() -> None:
    from runner.data.build import run

    folders = corpus()
    config = {
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
    recipe = Recipe(name="bench-data", path=Path("bench.yaml"), config=freeze(config))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext(run_dir=Path(tmp), out=Path(tmp) / "data", stage="data")
        from runner.data.tokens import TokenCounter

        tokens = TokenCounter.for_base("tiny:qwen2")  # loaded before timing: a one-off cost
        start = time.perf_counter()
        summary = run(recipe, ctx, tokens=tokens, progress=sys.stderr.isatty())
        seconds = time.perf_counter() - start
    report = summary["report"]
    megabytes = report["input_bytes"] / 1e6
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    files = sum(s.get("files", 0) for s in report["sources"].values())
    print(
        f"   corpus: {', '.join(map(str, folders))} ({megabytes:.1f} MB of .py read, {files} files)"
    )
    print(
        f"   examples: {json.dumps(report['split']['written'])}; rejected "
        f"{summary['rejected']}; secrets redacted "
        f"{report['filters'][3]['altered_items']}"
    )
    print(
        f"   throughput: {megabytes / seconds:.2f} MB/s over {seconds:.1f} s "
        f"on {min(2, os.cpu_count() or 1)} worker processes (target >= 5 MB/s)"
    )
    print(
        f"   peak memory: main {peak_self:.0f} MB, largest worker {peak_children:.0f} MB "
        f"(target < 2048 MB)"
    )


if __name__ == "__main__":
    main()
