"""Golden files: the Axolotl config of every shipped recipe, and the launch of each strategy.

An intended change to the expansion is reviewed as a diff of these files; refresh them with
`make golden` (REFRESH_GOLDEN=1). Every config is also checked key by key against Axolotl's own
model and validated by Axolotl, so a golden file can never pin a config Axolotl would reject.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from runner.recipe.load import load_recipe
from runner.train.config import dump_yaml, render_axolotl_config
from runner.train.estimate import gradient_checkpointing
from runner.train.launch import launch_command

ROOT = Path(__file__).resolve().parents[2]
# recipes/base/ holds fragments that full recipes `extends:`; they are not recipes themselves.
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "base" not in p.parts)
# Known recipe problems Axolotl's validation finds; strict, so a fix makes the test say so.
KNOWN_INVALID: dict[str, str] = {}
GOLDEN = ROOT / "tests" / "golden"
REFRESH = os.environ.get("REFRESH_GOLDEN") == "1"
STRATEGIES = {
    "single": {"compute.strategy": "single", "compute.gpus": 1},
    "ddp": {"compute.strategy": "ddp", "compute.gpus": 4},
    "fsdp": {"compute.strategy": "fsdp", "compute.gpus": 8},
    "deepspeed-zero1": {
        "compute.strategy": "deepspeed",
        "compute.gpus": 2,
        "compute.zero_stage": 1,
    },
    "deepspeed-zero2": {
        "compute.strategy": "deepspeed",
        "compute.gpus": 2,
        "compute.zero_stage": 2,
    },
    "deepspeed-zero3": {
        "compute.strategy": "deepspeed",
        "compute.gpus": 4,
        "compute.zero_stage": 3,
    },
}
# Keys whose values differ between strategies (everything else is shared).
STRATEGY_KEYS = ("fsdp_version", "fsdp_config", "deepspeed", "ddp_find_unused_parameters")


def test_there_are_recipes():
    assert len(RECIPES) > 0


def render(recipe, cuda: bool) -> dict:
    from runner.errors import UserError
    from runner.prompt.template import load_template

    try:
        template = load_template(recipe.prompt.template)
        source, end = template.source, [template.end_of_turn]
    except UserError:  # `template: tokenizer` is read from the base model at run time
        source, end = None, None
    return render_axolotl_config(
        recipe,
        base_model="BASE_MODEL_DIR",
        dataset_dir="RUN/train/data",
        output_dir="RUN/train",
        cuda=cuda,
        template_source=source,
        end_of_turn=end,
        gradient_checkpointing=gradient_checkpointing(recipe, cuda=cuda, detect=False),
    )


def compare(path: Path, text: str) -> None:
    if REFRESH or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not REFRESH:
            pytest.fail(f"{path} did not exist; written now, review and commit it")
    assert text == path.read_text(), f"{path} differs; run `make golden` if the change is intended"


def recipe_params():
    for path in RECIPES:
        rel = str(path.relative_to(ROOT / "recipes"))
        marks = (
            [pytest.mark.xfail(strict=True, reason=KNOWN_INVALID[rel])]
            if rel in KNOWN_INVALID
            else []
        )
        yield pytest.param(path, id=rel, marks=marks)


@pytest.mark.parametrize("recipe_path", list(recipe_params()))
@pytest.mark.parametrize("device", ["gpu", "cpu"])
def test_axolotl_config_golden(recipe_path, device):
    from runner.train.check import check_axolotl_keys

    recipe = load_recipe(recipe_path)
    cfg = render(recipe, cuda=device == "gpu")
    rel = recipe_path.relative_to(ROOT / "recipes").with_suffix("")
    compare(GOLDEN / "axolotl" / f"{rel}.{device}.yaml", dump_yaml(cfg))
    assert check_axolotl_keys(cfg) == []


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_launch_golden(strategy):
    from runner.train.check import check_axolotl_keys

    overrides = [f"{k}={v}" for k, v in STRATEGIES[strategy].items()]
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", overrides)
    cfg = render(recipe, cuda=True)
    pinned = {
        "launch": launch_command(recipe, "RUN/axolotl.yaml", cuda=True),
        "config": {k: cfg[k] for k in STRATEGY_KEYS if k in cfg},
    }
    compare(GOLDEN / "launch" / f"{strategy}.yaml", yaml.safe_dump(pinned, sort_keys=False))
    assert check_axolotl_keys(cfg) == []


def test_cpu_launch_is_one_process_whatever_the_strategy():
    recipe = load_recipe(
        ROOT / "recipes" / "quickstart.yaml", ["compute.strategy=ddp", "compute.gpus=4"]
    )
    assert launch_command(recipe, "c.yaml", cuda=False) == [
        "axolotl",
        "train",
        "c.yaml",
        "--launcher",
        "python",
    ]
