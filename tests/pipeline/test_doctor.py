"""`recipe doctor`: each check on this machine, and what it says when something is missing."""

from __future__ import annotations

import json
from pathlib import Path

from runner import doctor
from runner.cli import main as cli
from tests.helpers import recipe_of

ROOT = Path(__file__).resolve().parents[2]


def by_name(checks):
    return {c.name: c for c in checks}


def test_this_machine():
    from runner.train.hardware import nvidia_driver_present

    checks = by_name(doctor.run_checks())
    assert checks["python"].status == "ok"
    assert checks["axolotl"].status == "ok" and checks["axolotl"].detail.startswith("0.19.0")
    assert checks["llama.cpp"].status == "ok"
    if not nvidia_driver_present():
        assert checks["cuda"].status == "warn" and "model.cpu_fallback" in checks["cuda"].fix
        assert checks["bitsandbytes"].status == "warn"


def test_missing_llama_cpp_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECIPE_LLAMA_CPP_DIR", str(tmp_path))
    check = doctor.check_llama_cpp()
    assert check.status == "missing" and "make setup" in check.fix
    assert cli(["doctor", "--json"]) == 1
    out = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert out["llama.cpp"]["status"] == "missing"


def test_missing_axolotl(monkeypatch):
    monkeypatch.setattr(doctor, "version_of", lambda name: "absent")
    check = doctor.check_axolotl()
    assert (check.status, check.fix) == (
        "missing",
        "run `make setup` (installs axolotl==0.19.0 with torch 2.13.0)",
    )


def test_disk_need_follows_the_exports(tmp_path):
    recipe = recipe_of(
        {
            "export": [
                {"type": "merge"},
                {"type": "gguf", "outtype": "f16", "quantize": ["q8_0", "q4_k_m"]},
            ],
        },
        tmp_path,
    )
    gib = doctor.GIB
    # 14 GiB base: merged 14 + f16 14 + q8_0 7.7 + q4_k_m 4.34
    assert abs(doctor.disk_needed(recipe, 14 * gib) / gib - 40.04) < 0.01
    no_export = recipe_of({"export": []}, tmp_path)
    assert doctor.disk_needed(no_export, 14 * gib) == 0


def test_disk_check_for_a_recipe(tmp_path):
    from runner.recipe.load import load_recipe

    check = doctor.check_disk(load_recipe(ROOT / "recipes" / "quickstart.yaml"), tmp_path)
    assert check.status == "ok" and "merge + GGUF of tiny:qwen2 need about" in check.detail
