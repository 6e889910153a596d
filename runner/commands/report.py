"""`recipe report RUN`: print a run's evaluation report, or open its HTML page (`--open`).

RUN is a run folder (``runs/<name>/<hash>``), a recipe's runs folder (``runs/<name>``, meaning its
``latest`` run) or a recipe file (its latest run under ``$RECIPE_RUNS_DIR`` or ``runs/``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runner.commands.common import add_set_argument
from runner.errors import GateFailed, UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder, runs/<name>, or recipe file")
    parser.add_argument("--open", action="store_true", help="open report.html in a web browser")
    parser.add_argument("--html", action="store_true", help="print the path of report.html")
    parser.add_argument(
        "--check-gate",
        action="store_true",
        help="exit 3 when the evaluation missed its eval.gate (for CI)",
    )
    add_set_argument(parser)  # when RUN is a recipe file (overrides change its run folder)


def run_folder(target: str, overrides: list[str] | None = None) -> Path:
    """The run folder ``target`` names (see the module docstring)."""
    path = Path(target).expanduser()
    if path.is_file():
        from runner.pipeline import runs_root
        from runner.recipe.load import load_recipe

        recipe = load_recipe(path, overrides or [])
        path = runs_root() / recipe.name / "latest"
        if not path.exists():
            raise UserError(
                f"{target}: recipe '{recipe.name}' has no run yet ({path} is missing); "
                f"run `recipe run {target}` first"
            )
    if not path.is_dir():
        raise UserError(f"{target}: no such run folder or recipe file")
    if (path / "latest").exists() and not (path / "run.lock.json").exists():
        path = path / "latest"
    return path.resolve()


def eval_folder(run_dir: Path) -> Path:
    """The finished ``eval/`` of a run (kept also when its gate was missed)."""
    folder = run_dir / "eval"
    if (folder / "report.md").is_file():
        return folder
    raise UserError(
        f"{run_dir} has no evaluation report: the recipe needs `eval:` enabled and a finished "
        "`recipe run`"
    )


def main(args: argparse.Namespace) -> int:
    run_dir = run_folder(args.run, args.overrides)
    folder = eval_folder(run_dir)
    page = folder / "report.html"
    if args.open:
        import webbrowser

        if not webbrowser.open(page.as_uri()):
            print(f"no browser available; the report is {page}", file=sys.stderr)
    elif args.html:
        print(page)
    else:
        print((folder / "report.md").read_text(encoding="utf-8"), end="")
    if args.check_gate:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        failures = (results.get("gate") or {}).get("failures") or []
        if failures:
            raise GateFailed(
                "eval", "gate missed: " + "; ".join(failures) + f" (report: {folder / 'report.md'})"
            )
    return 0
