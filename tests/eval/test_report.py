"""The report from a small finished run folder: real checks, real matplotlib pictures."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from runner.dataset import read_split
from runner.eval.checks import CHECKS, Sample, build_checks
from runner.eval.loss import LossResult
from runner.eval.stage import write_outputs
from runner.pipeline import view
from tests.helpers import options, recipe_of, stage_context

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TEST_ROWS = [
    {
        "id": f"ex{i}",
        "messages": [
            {"role": "user", "content": f"Write a Zig function number {i}."},
            {"role": "assistant", "content": f"```zig\nfn f{i}() void {{}}\n```"},
        ],
        "meta": {"language": "zig"},
    }
    for i in range(6)
]


def make_run(tmp_path: Path):
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    with (run_dir / "data" / "test.jsonl").open("w") as f:
        for row in TEST_ROWS:
            f.write(json.dumps(row) + "\n")
        f.write("{broken\n")
    data_report = {  # the data stage's shape
        "split": {"train": 0.9, "written": {"train": 90, "val": 5, "test": 6}},
        "rejected": {"near_dedupe: similar to t3": 3, "length: over max_chars": 1},
        "bad_input": {"count": 2, "first": []},
        "tokens": {
            "counted_with": "chat template",
            "train": {"count": 90, "min": 9, "max": 120, "mean": 40.5, "p50": 38, "p95": 100},
        },
        "histogram": "token_lengths.png",
    }
    (run_dir / "data" / "report.json").write_text(json.dumps(data_report))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.hist([10, 20, 20, 30, 45, 45, 45], bins=5)
    fig.savefig(run_dir / "data" / "token_lengths.png")
    plt.close(fig)
    ckpt = run_dir / "train" / "checkpoint-12"
    ckpt.mkdir(parents=True)
    history = [{"step": s, "loss": 3.0 / s, "epoch": s / 4} for s in range(1, 13)]
    history.append({"step": 12, "eval_loss": 0.4})
    (ckpt / "trainer_state.json").write_text(
        json.dumps({"global_step": 12, "log_history": history})
    )
    return stage_context(run_dir, "eval")


def answers(cases, texts, finish):
    return [
        Sample(c.id, c.prompt, c.reference, t, f, c.meta)
        for c, t, f in zip(cases, texts, finish, strict=True)
    ]


def build(tmp_path: Path, gate: dict):
    ctx = make_run(tmp_path)
    recipe = view(recipe_of({"name": "zig-demo", "eval": {"gate": gate}}, tmp_path), "eval")
    testset = read_split(ctx.require("data"), "test")
    specs = [
        {"type": "syntax"},
        {"type": "forbid", "patterns": ["usingnamespace"]},
        {"type": "stops"},
    ]
    checks = build_checks([options(CHECKS, s) for s in specs], allow_commands=False)
    cases = testset.rows
    base = answers(
        cases,
        [
            "fn f0() void {",
            "I think so",
            "usingnamespace std;",
            "```zig\nfn x() void {}\n```",
            "no idea, sorry.",
            "blah blah",
        ],
        ["length", "stop", "length", "stop", "length", "length"],
    )
    tuned = answers(cases, [c.reference for c in cases], ["stop"] * 5 + ["length"])
    losses = {
        "base": LossResult(2.5, 12.18, 60, 6, {"ex0": 2.5}),
        "tuned": LossResult(1.25, 3.49, 60, 6, {"ex0": 1.2}),
    }
    results = {
        "sets": {"test": {"split": testset, "cases": cases, "losses": losses, "loss_skipped": []}},
        "primary": "test",
        "checks": checks,
        "notes": [],
        "samples": {"test": {"base": base, "tuned": tuned}},
        "models": {"base": "tiny:qwen2", "tuned": "merged"},
    }
    return ctx, write_outputs(recipe, ctx, results)


def test_report_numbers_pictures_and_side_by_side(tmp_path):
    ctx, summary = build(tmp_path, {"min_pass_rate": 0.8})
    out = ctx.out
    # Base: only the fenced block and the (valid) bare `usingnamespace std;` parse.
    assert summary["checks"]["syntax"] == {
        "base": pytest.approx(2 / 6),
        "tuned": 1.0,
        "improvement": pytest.approx(4 / 6),
    }
    assert summary["checks"]["forbid"]["base"] == pytest.approx(5 / 6)
    assert summary["checks"]["stops"]["tuned"] == pytest.approx(5 / 6)
    assert summary["pass_rate"]["tuned"] == pytest.approx(5 / 6)
    assert summary["gate"] == {"thresholds": {"min_pass_rate": 0.8}, "passed": True, "failures": []}
    assert summary["data"]["test_rows_skipped"][0]["line"] == 7
    assert [tuple(r) for r in summary["data"]["counts"]] == [
        ("examples in train", 90),
        ("examples in val", 5),
        ("examples in test", 6),
        ("rejected, all reasons", 4),
        ("rejected: near_dedupe: similar to t3", 3),
        ("rejected: length: over max_chars", 1),
        ("bad input rows", 2),
        ("tokens per train example (mean / p95 / max)", "40.5 / 100 / 120"),
    ]
    assert len(summary["differences"]) == 5
    for name in ("loss_curve.png", "token_lengths.png", "pass_rates.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    md = (out / "report.md").read_text()
    assert "# Evaluation: zig-demo" in md
    assert "| held-out loss (lower is better) | 2.5000 | 1.2500 | +1.2500 |" in md
    assert "| check `syntax` | 33.3% | 100.0% | +66.7 pts |" in md
    assert "![Pass rate per check, base vs fine-tuned](pass_rates.png)" in md
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert 'src="loss_curve.png"' not in page  # self-contained
    assert page.count("<table class='side'>") == 5
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["model"] for r in rows} == {"base", "tuned"}


def test_missed_gate_is_recorded_in_summary_and_report(tmp_path):
    ctx, summary = build(tmp_path, {"min_pass_rate": 0.9, "checks": {"stops": 0.9}})
    assert summary["gate"]["failures"] == [
        "pass rate 0.833 < min_pass_rate 0.9",
        "stops pass rate 0.833 < gate.checks.stops 0.9",
    ]
    assert (
        "gate: MISSED: pass rate 0.833 < min_pass_rate 0.9" in (ctx.out / "report.md").read_text()
    )


def finished_eval(tmp_path: Path, gate: dict) -> Path:
    """A run folder whose eval output sits where the pipeline puts a finished stage."""
    ctx, _ = build(tmp_path, gate)
    ctx.out.rename(ctx.run_dir / "eval")
    (ctx.run_dir / "run.lock.json").write_text(json.dumps({"stages": {"eval": "k" * 64}}))
    return ctx.run_dir


def test_recipe_report_prints_the_markdown(tmp_path, capsys):
    from runner.cli import main

    run_dir = finished_eval(tmp_path, {})
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out == (run_dir / "eval" / "report.md").read_text()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").symlink_to(run_dir)
    assert main(["report", str(tmp_path / "runs"), "--html"]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "eval" / "report.html")


def test_recipe_report_check_gate_exit_status(tmp_path, capsys):
    from runner.cli import main

    passing = finished_eval(tmp_path / "a", {"min_pass_rate": 0.8})
    assert main(["report", str(passing), "--check-gate"]) == 0
    missed = finished_eval(tmp_path / "b", {"min_pass_rate": 0.9})
    assert main(["report", str(missed), "--check-gate"]) == 3
    assert "gate missed: pass rate 0.833 < min_pass_rate 0.9" in capsys.readouterr().err


def test_report_of_a_run_without_eval_is_a_user_error(tmp_path, capsys):
    from runner.cli import main

    (tmp_path / "run").mkdir()
    assert main(["report", str(tmp_path / "run")]) == 2
    assert "has no evaluation report" in capsys.readouterr().err


def test_recipe_report_finds_the_latest_run_of_a_recipe_file(tmp_path, monkeypatch, capsys):
    from runner.cli import main

    run_dir = finished_eval(tmp_path, {})
    runs = tmp_path / "runs"
    (runs / "quickstart").mkdir(parents=True)
    (runs / "quickstart" / "latest").symlink_to(run_dir)
    monkeypatch.setenv("RECIPE_RUNS_DIR", str(runs))
    assert main(["report", "recipes/quickstart.yaml"]) == 0
    assert capsys.readouterr().out.startswith("# Evaluation: zig-demo")
    monkeypatch.setenv("RECIPE_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert main(["report", "recipes/quickstart.yaml"]) == 2
    assert "recipe 'quickstart' has no run yet" in capsys.readouterr().err
