"""recipe compare, recipe runs, the per-group gate and answer times, on evaluations written by
the real report code; the comparison of two trained runs is in test_continue_training.py."""

from __future__ import annotations

import json

import pytest

from runner.errors import UserError
from runner.eval.compare import compare_runs
from tests.iterate.conftest import evaluated_run, prompt_rows

CHECKS = {"checks": [{"type": "stops"}, {"type": "exact"}]}


def two_versions(tmp_path):
    rows = prompt_rows(6)
    right = [(r["messages"][1]["content"], "stop", 0.5) for r in rows]
    # v1 gets two wrong and one never stops; v2 gets one wrong.
    v1 = [("wrong", "stop", 0.4), ("nope", "stop", 0.4), *right[2:5], ("zeta zeta", "length", 2.0)]
    v2 = [*right[:3], ("gamma?", "stop", 0.3), *right[4:]]
    root = tmp_path / "runs"
    a, _ = evaluated_run(root, "meton", "v1", rows, {"tuned": v1}, CHECKS)
    b, _ = evaluated_run(root, "meton", "v2", rows, {"tuned": v2}, CHECKS)
    return a, b


def test_compare_writes_a_table_pictures_and_the_most_different_prompts(tmp_path):
    a, b = two_versions(tmp_path)
    out = tmp_path / "cmp"
    report = compare_runs([a, b], out)
    assert report["shared"] == {"test": 6}
    by_run = {row["run"]: row for row in report["table"]}
    assert by_run["meton:v1"]["pass_rate"] == pytest.approx(3 / 6)
    assert by_run["meton:v2"]["pass_rate"] == pytest.approx(5 / 6)
    assert by_run["meton:v1"]["checks"]["stops"] == pytest.approx(5 / 6)
    assert by_run["meton:v1"]["mean_seconds"] == pytest.approx((0.4 * 2 + 0.5 * 3 + 2.0) / 6)
    first = report["differences"][0]
    assert first["spread"] == 2 and first["id"] == "p5"  # v1 failed both checks there
    assert [x["run"] for x in first["answers"]] == ["meton:v1", "meton:v2"]
    md = (out / "compare.md").read_text()
    assert "| run | held-out loss | pass rate | `exact` | `stops` | s / answer | tokens/s |" in md
    assert "| meton:v2 |" in md and "**meton:v1** (finish: length) failed" in md
    assert (out / "compare-test.png").stat().st_size > 5000
    assert "<img" in (out / "compare.html").read_text()


def test_compare_from_the_command_line(tmp_path, capsys):
    from runner.cli import main

    a, b = two_versions(tmp_path)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Comparison") and "written to" in printed
    assert main(["compare", str(a)]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_runs_of_different_test_sets_are_refused(tmp_path):
    a, _ = two_versions(tmp_path)
    other = [dict(r, id=f"x{i}") for i, r in enumerate(prompt_rows(2))]
    c, _ = evaluated_run(tmp_path / "runs", "other", None, other, {"tuned": [("a", "stop", 1)] * 2})
    with pytest.raises(UserError, match="no test prompt was answered by every run"):
        compare_runs([a, c], tmp_path / "cmp")


def test_the_per_group_gate_fails_when_one_group_misses(tmp_path):
    rows = prompt_rows(6, version=["0.13", "0.14", "0.15"])
    right = [(r["messages"][1]["content"], "stop", 0.1) for r in rows]
    answers = [
        *right[:2],
        ("wrong", "stop", 0.1),
        *right[3:5],
        ("wrong", "stop", 0.1),
    ]  # 0.15 fails
    section = {
        **CHECKS,
        "group_by": "meta.version",
        "gate": {"min_pass_rate": 0.5, "min_pass_rate_per_group": 0.9},
    }
    run, summary = evaluated_run(
        tmp_path / "runs", "zig", None, rows, {"base": right, "tuned": answers}, section
    )
    assert summary["groups"]["0.15"]["tuned"] == 0.0
    assert summary["groups"]["0.13"]["tuned"] == 1.0 and summary["groups"]["0.13"]["samples"] == 2
    assert summary["gate"]["failures"] == [
        "pass rate of group 0.15 0.000 < min_pass_rate_per_group 0.9"
    ]
    md = (run / "eval" / "report.md").read_text()
    assert "## Pass rate per `meta.version`" in md
    header = (
        "| meta.version | prompts | `stops` (fine-tuned) | `exact` (fine-tuned) | all checks: base"
    )
    assert header in md
    assert "| 0.15 | 2 | 100.0% | 0.0% | 100.0% | 0.0% |" in md  # stops, exact, base, tuned
    # The same answers with every group above the bar pass.
    fine, summary = evaluated_run(
        tmp_path / "runs", "zig", "ok", rows, {"base": right, "tuned": right}, section
    )
    assert summary["gate"]["passed"] is True


def test_answer_times_are_reported_and_gated(tmp_path):
    rows = prompt_rows(4)
    slow = [(r["messages"][1]["content"], "stop", 3.0) for r in rows]
    section = {**CHECKS, "gate": {"max_seconds_per_answer": 2.0}}
    run, summary = evaluated_run(tmp_path / "runs", "qi", None, rows, {"tuned": slow}, section)
    assert summary["latency"]["tuned"]["mean_seconds"] == 3.0
    assert summary["gate"]["failures"] == [
        "3.00 seconds per answer (mean of 4) > max_seconds_per_answer 2"
    ]
    md = (run / "eval" / "report.md").read_text()
    assert "| fine-tuned | 4 | 3.00 | 3.00 | 3.00 |" in md
    samples = [json.loads(x) for x in (run / "eval" / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["seconds"] == 3.0 and samples[0]["prompt"][0]["content"] == "Say alpha."


def test_recipe_runs_lists_versions_status_and_numbers(tmp_path, monkeypatch, capsys):
    from runner import pipeline
    from runner.cli import main
    from runner.sweep.run import run_sweep
    from tests.iterate.test_sweep import SWEEP, Stages, write_recipe

    monkeypatch.setattr(pipeline, "load_stage", Stages())
    root = tmp_path / "runs"
    run_sweep(write_recipe(tmp_path / "recipe", SWEEP), root=root, say=lambda m: None)
    assert main(["runs", "demo", "--runs-dir", str(root), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 4  # three trials and the promoted winner
    promoted = next(r for r in runs if r["versions"] == ["v1"])
    assert promoted["latest"] and promoted["status"] == "done"
    assert promoted["held_out_loss"] == pytest.approx(2.6)
    assert sorted(r["status"] for r in runs) == ["done", "done", "done", "stopped at train"]
    assert main(["runs", "--runs-dir", str(root)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:5] == ["recipe", "run", "version", "created", "status"]
    assert main(["runs", "nothing", "--runs-dir", str(root)]) == 2
    assert "no runs of 'nothing'" in capsys.readouterr().err
