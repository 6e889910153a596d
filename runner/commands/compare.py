"""`recipe compare RUN RUN... [--out DIR]`: evaluated runs side by side on the prompts they share.

Each RUN is a run folder, ``runs/<name>/<version>``, ``runs/<name>`` (its latest run) or a recipe
file (its latest run). Writes ``compare.md``, ``compare.html``, ``compare.json`` and one picture
per shared test set, and prints the markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders or recipe files")
    parser.add_argument(
        "--out", metavar="DIR", help="where to write (default: runs/_compare/<runs' hash>)"
    )


def main(args: argparse.Namespace) -> int:
    from runner.commands.report import run_folder
    from runner.eval.compare import compare_runs
    from runner.hashing import content_hash
    from runner.pipeline import runs_root

    run_dirs = [run_folder(target) for target in args.runs]
    out = (
        Path(args.out).resolve()
        if args.out
        else runs_root() / "_compare" / content_hash([str(p) for p in run_dirs])[:10]
    )
    compare_runs(run_dirs, out)
    print((out / "compare.md").read_text(encoding="utf-8"), end="")
    print(f"\n(written to {out}: compare.md, compare.html, compare.json)")
    return 0
