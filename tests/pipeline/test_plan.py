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


SHIPPED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "base" not in p.parts)


def test_every_shipped_recipe_plans_with_an_estimate(tmp_path, monkeypatch, capsys):
    import json

    from runner.cli import main

    monkeypatch.setenv("RECIPE_RUNS_DIR", str(tmp_path / "runs"))
    assert SHIPPED
    for path in SHIPPED:
        assert main(["plan", str(path), "--json"]) == 0
        plan = json.loads(capsys.readouterr().out)
        cost = plan["estimate"]
        if _absent_gguf_base(plan["recipe"]["model"]["base"]):
            # meton-gguf / qi-ollama name a model this machine does not have: its shape is
            # read from the GGUF header only where the file is (tests/models/test_gguf_base.py).
            assert cost is None, path
            continue
        assert cost is not None, path
        assert cost["parameters"] > 0 and 0 < cost["trainable"] <= cost["parameters"]
        assert cost["memory"]["total"] > cost["memory"]["weights"] > 0
        if any(t["type"] == "gguf" for t in plan["recipe"]["export"]):
            assert cost["disk"]["merged"] > 0
    assert main(["plan", str(SHIPPED[0]), "--set", "compute.gpu=l4"]) == 0
    text = capsys.readouterr().out
    assert "# estimate (before any GPU time is spent)" in text
    assert "memory per device:" in text and "on l4 (24 GiB)" in text


def test_recipe_data_and_recipe_run_share_one_run_folder(tmp_path, monkeypatch, capsys):
    """`recipe data` writes where `recipe run` does (under $RECIPE_RUNS_DIR), so the run that
    follows finds the dataset built and cached."""
    from runner.cli import main

    runs = tmp_path / "runs"
    monkeypatch.setenv("RECIPE_RUNS_DIR", str(runs))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = str(ROOT / "recipes" / "quickstart.yaml")
    assert main(["data", recipe]) == 0
    latest = runs / "quickstart" / "latest"
    assert (latest / "data" / "train.jsonl").is_file()
    capsys.readouterr()
    assert main(["run", recipe, "--until", "data"]) == 0
    out = capsys.readouterr().out
    assert "data: cached" in out
    assert (runs / "quickstart" / "latest").resolve() == latest.resolve()
    assert list(elsewhere.iterdir()) == []


def _absent_gguf_base(base: str) -> bool:
    from runner.errors import UserError
    from runner.models.gguf_base import is_gguf_base, locate

    if not is_gguf_base(base):
        return False
    try:
        locate(base)
    except (UserError, OSError):
        return True
    return False
