"""extends:, --set and explain: composition of recipes shared between projects."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import main
from runner.recipe.load import load_recipe
from runner.recipe.problems import RecipeErrors

BASE = """\
recipe: 1
name: base
train:
  epochs: 3
  learning_rate: 0.0002
filters:
  - type: exact_dedupe
  - type: secrets
sources:
  - type: instructions
    path: data/base.jsonl
"""

CHILD = """\
recipe: 1
name: child
extends: shared/base.yaml
train:
  epochs: 1
filters:
  - type: emails
model:
  base: tiny:qwen2
"""


@pytest.fixture
def chain(write, tmp_path):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "base.jsonl").write_text("{}\n")
    write("shared/base.yaml", BASE)
    return write("child.yaml", CHILD)


def test_mappings_merge_and_lists_replace(chain):
    recipe = load_recipe(chain)
    assert recipe.name == "child"
    assert recipe.train.epochs == 1
    assert recipe.train.learning_rate == 0.0002  # inherited
    assert [f.type for f in recipe.filters] == ["emails"]  # replaced, not appended


def test_paths_resolve_against_the_file_that_set_them(chain, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    recipe = load_recipe(chain)
    assert Path(recipe.sources[0].path) == (tmp_path / "shared" / "data" / "base.jsonl").resolve()


def test_origins_point_at_the_right_file_and_line(chain, tmp_path):
    recipe = load_recipe(chain)
    assert recipe.origins["train.epochs"].file == str(chain.resolve())
    assert recipe.origins["train.epochs"].line == 5
    base = recipe.origins["train.learning_rate"]
    assert base.file == str((tmp_path / "shared" / "base.yaml").resolve()) and base.line == 5


def test_errors_in_an_extended_file_point_at_that_file(write, tmp_path):
    (tmp_path / "d.jsonl").write_text("{}\n")
    write("base.yaml", "recipe: 1\nname: b\ntrain:\n  epocs: 2\n")
    child = write(
        "child.yaml",
        "recipe: 1\nname: c\nextends: base.yaml\nsources:\n  - type: instructions\n    path: d.jsonl\nmodel:\n  base: tiny:qwen2\n",
    )
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(child)
    assert "base.yaml:4:3: train.epocs: unknown key 'epocs'" in str(caught.value)


def test_extends_cycle_names_the_chain(write):
    write("a.yaml", "recipe: 1\nname: a\nextends: b.yaml\n")
    write("b.yaml", "recipe: 1\nname: b\nextends: a.yaml\n")
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(Path(write("c.yaml", "recipe: 1\nname: c\nextends: a.yaml\n")))
    message = str(caught.value)
    assert "extends cycle:" in message and "a.yaml -> " in message and "b.yaml -> " in message


def test_set_overrides_are_typed_by_the_schema(chain):
    recipe = load_recipe(
        chain,
        [
            "train.epochs=2.5",
            "prompt.system=42",
            "model.base=tiny:llama",
            "filters[0].type=secrets",
        ],
    )
    assert recipe.train.epochs == 2.5
    assert recipe.prompt.system == "42"  # a string key stays a string
    assert recipe.model.base == "tiny:llama"
    assert recipe.filters[0].type == "secrets"
    assert recipe.origins["train.epochs"].file == "--set"


def test_set_unknown_key_is_reported(chain):
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(chain, ["train.epocs=1"])
    assert "--set: train.epocs: unknown key; did you mean 'epochs'?" in str(caught.value)


def test_set_bad_value_is_reported_against_set(chain):
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(chain, ["train.epochs=many"])
    assert "--set: train.epochs: 'many' is not valid here: expected a number" in str(caught.value)


def test_explain_prints_value_and_origin(chain, capsys):
    assert main(["explain", str(chain), "train.learning_rate"]) == 0
    out = capsys.readouterr().out
    assert "train.learning_rate = 0.0002" in out
    assert "shared/base.yaml:5" in out


def test_explain_default_and_set(chain, capsys):
    assert main(["explain", str(chain), "train.seq_len"]) == 0
    assert "default from the recipe schema" in capsys.readouterr().out
    assert main(["explain", str(chain), "train.epochs", "--set", "train.epochs=7"]) == 0
    out = capsys.readouterr().out
    assert "train.epochs = 7" in out and "set by --set" in out


def test_resolved_recipe_is_immutable(chain):
    from pydantic import ValidationError

    recipe = load_recipe(chain)
    with pytest.raises(ValidationError, match="frozen"):
        recipe.train.epochs = 5
    with pytest.raises(ValidationError, match="frozen"):
        recipe.sources = ()
    assert isinstance(recipe.filters, tuple)  # lists are tuples: no append behind its back
