"""Every recipe shipped under recipes/ validates (litgpt's config-hub test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.recipe.load import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "base" not in p.parts)


def test_recipes_are_found():
    assert len(SHIPPED) >= 6
    assert ROOT / "recipes" / "quickstart.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name
    assert recipe.sources


def test_quickstart_is_the_built_in_default():
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml")
    assert recipe.name == "quickstart"
    assert recipe.model.base.startswith("tiny:")
