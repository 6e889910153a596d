"""`--laptop`: every shipped recipe loads with its family's tiny model and a CPU method, the
changes are listed once, and the user's own --set still wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.recipe.laptop import LAPTOP_ORIGIN, tiny_for
from runner.recipe.load import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "base" not in p.parts)


@pytest.mark.parametrize(
    "base, template, tiny",
    [
        ("Qwen/Qwen2.5-Coder-7B-Instruct", "chatml", "tiny:qwen2"),
        ("deepseek-ai/deepseek-coder-6.7b-instruct", "deepseek-coder", "tiny:deepseek-coder"),
        ("codellama/CodeLlama-7b-Instruct-hf", "llama2", "tiny:llama"),
        ("/models/my-finetune", "llama2", "tiny:llama"),  # by template when the name says nothing
        ("/models/my-finetune", "chatml", "tiny:qwen2"),
        ("tiny:llama", "chatml", "tiny:llama"),
    ],
)
def test_tiny_for(base, template, tiny):
    assert tiny_for(base, template) == tiny


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_recipe_loads_for_a_laptop(path):
    recipe = load_recipe(path, laptop=True)
    assert recipe.model.base.startswith("tiny:")
    assert recipe.model.quantization == "none"
    assert recipe.lora.target_modules == "all_linear"
    assert recipe.train.max_steps == 80 and recipe.train.seq_len <= 512
    assert not any(c.type == "command" for c in recipe.eval.checks)
    assert recipe.eval.smoke.prompts_from == "train"
    assert recipe.eval.smoke.stop_test == "reference"
    notes = [w for w in recipe.warnings if LAPTOP_ORIGIN in w]
    if path.stem != "quickstart":
        assert len(notes) == 1 and "trying the recipe on this CPU" in notes[0]


def test_the_users_set_wins_and_the_origin_says_laptop():
    zignet = ROOT / "recipes" / "examples" / "zignet.yaml"
    recipe = load_recipe(zignet, ["train.max_steps=5"], laptop=True)
    assert recipe.train.max_steps == 5
    assert recipe.model.base == "tiny:qwen2"  # Qwen2.5-Coder's family
    assert recipe.origins["model.base"].file == LAPTOP_ORIGIN
    assert recipe.eval.gate.min_pass_rate is None
    plain = load_recipe(zignet)
    assert plain.model.base == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert not any(LAPTOP_ORIGIN in w for w in plain.warnings)
