"""Nothing a recipe holds can crash the loader, hang it or make it eat the machine.

Each crash class found by mutating the shipped recipes is a row here: the loader answers with a
located message and exit status 2, never a traceback.
"""

from __future__ import annotations

import os

import pytest

from runner.cli import main
from runner.recipe.load import load_recipe
from runner.recipe.problems import RecipeErrors
from runner.recipe.yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES

HEADER = """\
recipe: 1
name: demo
sources:
  - type: instructions
    path: data.jsonl
model:
  base: tiny:qwen2
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    return "recipe: 1\nname: bomb\n" + "\n".join(lines) + f"\nsources: *a{levels}\n"


# (whole recipe text, expected "line:col: key: message" fragment)
CASES = [
    (
        HEADER + "filters:\n  - type: [near_dedupe, length]\n",
        "9:5: filters[0].type: must be one filter name, not ['near_dedupe', 'length']",
    ),
    (
        HEADER + "filters:\n  - type: {x: 1}\n",
        "9:5: filters[0].type: must be one filter name, not {'x': 1}",
    ),
    (HEADER + "filters:\n  - [length]\n", "9:5: filters[0]: must be a mapping with a `type:`"),
    (
        HEADER.replace("data.jsonl", "a" * 5000),
        "5:5: sources[0].path: a path of 5000 characters is longer than file systems allow",
    ),
    (
        HEADER.replace("data.jsonl", "dir/" + "b" * 300 + "/x.jsonl"),
        "5:5: sources[0].path: the name 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'... is longer",
    ),
    (HEADER.replace("data.jsonl", '"a\\0b"'), "5:5: sources[0].path: a path cannot contain a NUL"),
    (
        HEADER.replace("tiny:qwen2", '"./model\\0"'),
        "7:3: model.base: a path cannot contain a NUL byte",
    ),
    (HEADER + "!!python/object/apply:os.system [echo] : 1\n", "8:1: (yaml): keys must be plain"),
    (
        HEADER + "!!python/name:os.system : 1\n",
        "8:1: (yaml): YAML: could not determine a constructor for the tag",
    ),
    (
        HEADER + "filters: [!!python/name:os.system x]\n",
        "8:11: (yaml): YAML: could not determine a constructor for the tag",
    ),
    (HEADER + "? [a, b]\n: 1\n", "8:3: (yaml): keys must be plain strings"),
    ("recipe: 1\nextends: ''\nname: x\n", "2:1: extends: must be a file path or a list"),
    ("recipe: 1\nextends: [base.yaml, 3]\n", "2:1: extends: must be a file path or a list"),
    ("recipe: 1\nextends: .\nname: x\n", "2:1: extends: extended recipe is a folder"),
    ('recipe: 1\nextends: "a\\0b"\n', "2:1: extends: a path cannot contain a NUL byte"),
    (HEADER + "when: 2024-02-31\n", "8:7: (yaml): YAML value cannot be read: day is out of range"),
    (HEADER + "train:\n  seed: 1" + "0" * 5000 + "\n", "9:9: (yaml): YAML value cannot be read"),
    (
        HEADER + "train:\n  seed: 0x" + "f" * 5000 + "\n",
        "9:3: train.seed: a 20000-bit number is greater than the maximum of 4294967295",
    ),
    (alias_bomb(), f"the document expands to more than {MAX_NODES:,} values"),
    ("recipe: " + "[" * 5000 + "\n", "the document nests too deeply to read"),
    (
        "recipe: 1\nx: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n",
        f"the document nests deeper than {MAX_DEPTH} levels",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=range(len(CASES)))
def test_crash_classes_are_located_errors(
    write, data_file, text, expected, capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    path = write("recipe.yaml", text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err
    assert err.startswith("recipe.yaml:")  # every error names the recipe file


def test_a_50_megabyte_file_is_refused_unread(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.seek(50 * 1024 * 1024)
        handle.write(b"\n")  # sparse: the loader must refuse from the size alone
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"a recipe may be at most {MAX_BYTES:,} bytes" in err


@pytest.mark.parametrize("kind", ["folder", "fifo", "binary"])
def test_files_that_are_not_recipes(tmp_path, capsys, kind):
    path = tmp_path / "thing.yaml"
    if kind == "folder":
        path.mkdir()
        expected = "is a folder, not a recipe file"
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
        expected = "is not a regular file"
    else:
        path.write_bytes(b"\xff\xfe\x00recipe")
        expected = "not UTF-8 text"
    assert main(["validate", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_a_nul_byte_in_the_recipe_path_itself(capsys):
    assert main(["validate", "recipe\x00.yaml"]) == 2
    assert "a path cannot contain a NUL byte" in capsys.readouterr().err


def test_an_alias_bomb_in_a_set_value_is_not_expanded(write, data_file):
    path = write("recipe.yaml", HEADER)
    anchors = ["&a0 [" + ", ".join(["x"] * 9) + "]"]
    for level in range(1, 10):
        anchors.append(f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    bomb = "[" + ", ".join(anchors) + "]"
    # A --set value is read with the same bounded reader: the bomb stays an unread string.
    with pytest.raises(RecipeErrors, match="train.epochs: .* is not valid here: expected a number"):
        load_recipe(path, [f"train.epochs={bomb}"])


def test_extends_chain_has_a_bound(write, data_file):
    for index in range(40):
        write(f"r{index}.yaml", f"extends: r{index + 1}.yaml\n")
    write("r40.yaml", HEADER)
    with pytest.raises(RecipeErrors, match="extends goes more than 32 files deep"):
        load_recipe(write("start.yaml", "extends: r0.yaml\n"))
