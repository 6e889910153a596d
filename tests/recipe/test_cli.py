"""The `recipe` command's front door: help, schema, exit statuses, no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jsonschema import Draft202012Validator

from runner.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_schema_is_valid_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def test_every_object_in_the_schema_is_strict():
    from runner.recipe.schema import json_schema

    schema = json_schema()
    loose = []

    def walk(node, at):
        if isinstance(node, dict):
            strict = node.get("additionalProperties") is False
            if node.get("type") == "object" and "properties" in node and not strict:
                loose.append(at)
            for key, value in node.items():
                walk(value, f"{at}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{at}/{i}")

    walk(schema, "")
    assert loose == []


def test_unknown_command_exits_2(capsys):
    try:
        main(["frobnicate"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_validate_imports_no_heavy_modules():
    code = (
        "import sys; from runner.cli import main; "
        f"main(['validate', '-q', {str(ROOT / 'recipes' / 'quickstart.yaml')!r}]); "
        "heavy = [m for m in ('torch', 'transformers', 'axolotl', 'llama_cpp', 'datasets') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
