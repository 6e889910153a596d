"""`recipe schema`: print the recipe JSON Schema, for editors (yaml-language-server etc.)."""

from __future__ import annotations

import argparse

from runner.recipe.schema import SCHEMA_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    print(SCHEMA_FILE.read_text(encoding="utf-8"), end="")
    return 0
