"""The eval stage on a finished run folder: real tiny models, real llama.cpp conversion and
generation, real checks, a real report, and the gate's exception."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.eval.stage import run
from runner.prompt.template import load_template, save_template
from tests.eval.conftest import ROWS, write_jsonl
from tests.helpers import recipe_of, run_stage, stage_context

pytestmark = [pytest.mark.xdist_group("eval-tiny-qwen2"), pytest.mark.slow]

PARSE_PY = [sys.executable, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", "{file}"]


def recipe(tmp_path: Path, **eval_section):
    config = {
        "name": "eval-demo",
        "prompt": {"template": "chatml", "train_on": "assistant"},
        "model": {"base": "tiny:qwen2"},
        "train": {"seq_len": 256},
        "export": [],
        "eval": {
            "max_prompts": 3,
            "max_new_tokens": 24,
            "checks": [
                {"type": "stops"},
                {"type": "syntax", "language": "python"},
                {"type": "command", "run": PARSE_PY, "file": "answer.py", "timeout": 20},
            ],
            "allow_commands": True,
            **eval_section,
        },
    }
    return recipe_of(config, tmp_path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_base, fitted_adapter) -> Path:
    """data/, train/ and merged/ as the earlier stages leave them (no gguf/: eval converts)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = tmp_path_factory.mktemp("run")
    write_jsonl(run / "data" / "test.jsonl", ROWS)
    (run / "data" / "report.json").write_text(
        json.dumps({"splits": {"train": 30, "val": 4, "test": 4}})
    )
    shutil.copytree(fitted_adapter, run / "train")
    save_template(load_template("chatml", run / "train"), run / "train")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(fitted_adapter)).merge_and_unload()
    merged.save_pretrained(str(run / "merged"))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_base / name).exists():
            shutil.copy(tiny_base / name, run / "merged" / name)
    (run / "logs").mkdir()
    return run


def context(run: Path, name: str):
    out = run / name
    if out.exists():
        shutil.rmtree(out)
    return stage_context(run, "eval", out)


def test_stage_measures_both_models_and_writes_the_report(run_dir, tmp_path):
    ctx = context(run_dir, "eval-ok")
    outcome = run_stage(run, recipe(tmp_path, gate={"min_loss_improvement": 0.5}), ctx)
    assert outcome.failure is None
    assert set(outcome.outputs) >= {"results.json", "samples.jsonl", "report.md", "report.html"}
    summary = outcome.summary
    loss = summary["loss"]
    assert loss["tuned"] < loss["base"] - 0.5
    assert summary["generated"] == 3
    assert set(summary["checks"]) == {"stops", "syntax", "command"}
    for pair in summary["checks"].values():
        assert pair["base"] is not None and pair["tuned"] is not None
    assert summary["gate"]["passed"] is True
    assert any("without network" in n for n in outcome.notes)
    rows = [json.loads(x) for x in (ctx.out / "samples.jsonl").read_text().splitlines()]
    assert (
        [r["model"] for r in rows].count("base") == 3 == [r["model"] for r in rows].count("tuned")
    )
    results = json.loads((ctx.out / "results.json").read_text())
    assert results["models"]["gguf_base"].endswith("base-f16.gguf")
    assert len(results["differences"]) == 3
    md = (ctx.out / "report.md").read_text()
    assert "| held-out loss (lower is better) |" in md and "loss_curve.png" in md
    assert (ctx.out / "pass_rates.png").stat().st_size > 5000


def test_missed_gate_is_a_failed_outcome_with_its_report(run_dir, tmp_path):
    ctx = context(run_dir, "eval-gate")
    gate = {"max_loss": 0.0001}
    outcome = run_stage(run, recipe(tmp_path, compare_base=False, gate=gate), ctx)
    assert outcome.failure is not None
    assert outcome.failure.exit_code == 3 and outcome.failure.kind == "gate missed"
    message = outcome.failure.message
    assert "held-out loss" in message and "> max_loss 0.0001" in message
    assert f"report: {ctx.run_dir / 'eval' / 'report.md'}" in message
    assert (ctx.out / "report.md").is_file() and "gate: MISSED" in (
        ctx.out / "report.md"
    ).read_text()


def test_commands_refused_before_any_model_loads(run_dir, tmp_path):
    ctx = context(run_dir, "eval-refused")
    with pytest.raises(UserError, match="eval.allow_commands is false"):
        run_stage(run, recipe(tmp_path, allow_commands=False), ctx)
    assert list(ctx.out.iterdir()) == []
