"""`make bench`: run every bench/bench_*.py module's `main()` and print its numbers.

Speed and memory targets live here as reported numbers, never as timed tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    only = sys.argv[1:]
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))
    failed = 0
    for name in names:
        if not name.startswith("bench_") or (only and name not in only):
            continue
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # a broken benchmark must not hide the others' numbers
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
