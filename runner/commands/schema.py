"""`recipe schema`: print the recipe JSON Schema, for editors (yaml-language-server etc.).

The schema is generated from the typed recipe (``runner.recipe.schema.Recipe``), so it always
matches what ``recipe validate`` accepts: every key with its type, default and description.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    from runner.recipe.schema import json_schema_text

    print(json_schema_text(), end="")
    return 0
