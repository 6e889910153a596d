"""`plan(recipe)`: the stages with what each writes, notes, and the Axolotl config; writes nothing."""

from __future__ import annotations

from pathlib import Path

from runner.pipeline import plan
from runner.recipe.load import load_recipe
from runner.run.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]


def test_plan_of_the_quickstart(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", ["train.sample_packing=auto"])
    result = plan(recipe, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    stages = {s["name"]: s for s in result["stages"]}
    assert list(stages) == list(STAGES)
    enabled = [name for name, s in stages.items() if s["enabled"]]
    assert enabled == ["data", "train", "merge", "gguf", "ollama", "smoke", "eval"]
    assert stages["train"]["status"] == "would run"
    assert stages["train"]["writes"][0].startswith("train/: axolotl.yaml")
    assert not stages["hub"]["enabled"]
    details = stages["train"]["details"]
    assert details["axolotl"]["chat_template"] == "jinja"
    assert details["axolotl"]["eot_tokens"] == ["<|im_end|>"]
    # Paths are relative to the train folder, where Axolotl runs.
    assert details["axolotl"]["output_dir"] == "."
    assert details["axolotl"]["datasets"][0]["path"] == "data/train.jsonl"
    from runner.train.hardware import cuda_available

    if not cuda_available():
        assert any(n.startswith("sample packing off") for n in stages["train"]["notes"])
        assert details["launch"][-2:] == ["--launcher", "python"]
