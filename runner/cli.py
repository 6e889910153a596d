"""The `recipe` command. Each subcommand lives in its own module and is imported only when used,
so that `recipe --help`, `validate` and `plan` never pay for torch or Axolotl imports."""

from __future__ import annotations

import argparse
import importlib
import sys

from runner.errors import StageError, UserError

# name -> (module under runner.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check recipes and report every mistake with file and line"),
    "plan": ("plan", "show the resolved recipe, the stages and the Axolotl config, run nothing"),
    "explain": ("explain", "print a key's final value and which file or --set set it"),
    "schema": ("schema", "print the recipe JSON Schema (for editors)"),
    "data": ("data", "build the dataset a recipe describes"),
    "run": ("run", "run a recipe end to end (data, train, export, eval)"),
    "doctor": ("doctor", "check this machine: CUDA, Axolotl, llama.cpp, disk"),
    "report": ("report", "print or open the report of a run"),
    "serve": ("serve", "the job API and its page: submit, follow and cancel runs over HTTP"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="recipe",
        description="Declarative fine-tuning recipes for code models: data -> Axolotl -> GGUF -> Ollama.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {}
    for name, (_, help_text) in COMMANDS.items():
        subparsers[name] = sub.add_parser(name, help=help_text, description=help_text)
    return parser, subparsers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, subparsers = build_parser()
    # Only the chosen command's module is imported (it adds its own arguments).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen not in COMMANDS:
        parser.parse_args(argv)  # -h exits 0; an unknown command exits 2 with argparse's message
        parser.print_help()
        return 0
    from runner.logs import quiet_libraries

    quiet_libraries()
    module = importlib.import_module(f"runner.commands.{COMMANDS[chosen][0]}")
    module.add_arguments(subparsers[chosen])
    args = parser.parse_args(argv)
    try:
        return int(module.main(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept, run again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
