"""Loading a recipe from someone else (the job API): YAML text with its own line numbers, every
local path confined to data folders, extra rules located like any other mistake."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from runner.paths import outside_roots
from runner.recipe.load import Limits, load_recipe, load_recipe_text
from runner.recipe.problems import Problem, RecipeErrors


def text(path: str, *extra: str) -> str:
    lines = ["recipe: 1", "name: t", "sources:", "  - type: instructions", f"    path: {path}"]
    return "\n".join([*lines, "model:", "  base: tiny:qwen2", *extra]) + "\n"


@pytest.fixture
def root(tmp_path) -> Path:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "ok.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (data / "base.yaml").write_text("recipe: 1\ndescription: base\n")
    (data / "link.jsonl").symlink_to(tmp_path / "secret.jsonl")
    (tmp_path / "secret.jsonl").write_text("{}\n")
    (data / "inner-link.jsonl").symlink_to(data / "ok.jsonl")
    return data


def confined(root: Path, *, text: bool = True) -> Limits:
    return Limits(check_path=partial(outside_roots, roots=(root,), refuse_parent=text))


CASES = [
    # (path value, extra lines, expected first line of the error, or None when taken)
    ("ok.jsonl", (), None),
    ("inner-link.jsonl", (), None),
    ("{root}/ok.jsonl", (), None),
    (
        "/etc/hostname",
        (),
        "recipe:5:5: sources[0].path: '/etc/hostname' is outside the server's data folders",
    ),
    ("sub/../ok.jsonl", (), "recipe:5:5: sources[0].path: 'sub/../ok.jsonl': '..' is not allowed"),
    ("link.jsonl", (), "recipe:5:5: sources[0].path: 'link.jsonl' is outside"),
    ("~/x.jsonl", (), "recipe:5:5: sources[0].path: '~/x.jsonl' is outside"),
    ("ok.jsonl", ("extends: base.yaml",), None),
    (
        "ok.jsonl",
        ("extends: ../secret.yaml",),
        "recipe:8:1: extends: '../secret.yaml': '..' is not allowed",
    ),
    ("ok.jsonl", ("extends: /etc/passwd",), "recipe:8:1: extends: '/etc/passwd' is outside"),
    (
        "ok.jsonl",
        ("prompt:", "  template: /etc/t.jinja"),
        "recipe:9:3: prompt.template: '/etc/t.jinja' is outside",
    ),
]


@pytest.mark.parametrize(("path", "extra", "expected"), CASES)
def test_text_recipes_read_only_under_their_roots(root, path, extra, expected):
    source = text(path.format(root=root), *extra)
    if expected is None:
        recipe = load_recipe_text(source, root / "recipe.yaml", limits=confined(root))
        assert Path(recipe.sources[0].path).parent == root
        return
    with pytest.raises(RecipeErrors) as caught:
        load_recipe_text(source, root / "recipe.yaml", limits=confined(root))
    assert str(caught.value).splitlines()[0].startswith(expected)


def test_text_recipes_have_their_own_line_numbers(root):
    source = text("ok.jsonl", "train:", "  epochs: -1")
    with pytest.raises(RecipeErrors) as caught:
        load_recipe_text(source, root / "recipe.yaml", shown_as="request.recipe")
    assert str(caught.value).splitlines()[:2] == [
        "request.recipe:9:3: train.epochs: -1 is less than or equal to the minimum of 0",
        "       9 |   epochs: -1",
    ]
    with pytest.raises(RecipeErrors, match=r"^recipe:3:1: \(yaml\): YAML syntax error"):
        load_recipe_text("name: [\n  x: y\n", root / "recipe.yaml")


def test_a_file_may_use_dotdot_inside_its_roots_but_not_leave_them(root):
    (root / "sub" / "r.yaml").write_text(text("../ok.jsonl"))
    recipe = load_recipe(root / "sub" / "r.yaml", limits=confined(root, text=False))
    assert recipe.sources[0].path == str(root / "ok.jsonl")
    with pytest.raises(RecipeErrors, match="sources\\[0\\].path: '../ok.jsonl' is outside"):
        load_recipe(root / "sub" / "r.yaml", limits=confined(root / "sub", text=False))


def test_override_paths_are_checked_too(root):
    with pytest.raises(
        RecipeErrors, match=r"^--set: sources\[0\]\.path: '/etc/hostname' is outside"
    ):
        load_recipe_text(
            text("ok.jsonl"),
            root / "recipe.yaml",
            ["sources.0.path=/etc/hostname"],
            limits=confined(root),
        )


def test_extra_rules_are_located_like_the_others(root):
    def no_tiny(recipe):
        if recipe.model.base.startswith("tiny:"):
            yield Problem(("model", "base"), "tiny models are not served here")

    with pytest.raises(RecipeErrors) as caught:
        load_recipe_text(text("ok.jsonl"), root / "recipe.yaml", limits=Limits(rules=(no_tiny,)))
    assert (
        str(caught.value).splitlines()[0]
        == "recipe:7:3: model.base: tiny models are not served here"
    )
