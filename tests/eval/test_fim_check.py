"""The `fim` eval check: it judges only infill samples (the chat checks only chat ones), the
summary gives exact-match and similarity per model, and the report's comparison shows both,
with an empty parent cell for a continued run."""

from __future__ import annotations

from runner.eval.checks import Sample, build_checks
from runner.eval.checks.fim import FimCheck, fim_summary
from runner.eval.report import comparison_rows
from runner.eval.score import pass_rates, run_checks

FIM_META = {"format": "fim", "language": "python"}


def infill(id_: str, middle: str, answer: str, finish: str = "stop") -> Sample:
    prompt = [{"role": "user", "content": "<｜fim▁begin｜>a<｜fim▁hole｜>b<｜fim▁end｜>"}]
    return Sample(id_, prompt, middle, answer, finish, dict(FIM_META))


def chat(id_: str, answer: str) -> Sample:
    return Sample(id_, [{"role": "user", "content": "Say hi."}], "Hi.", answer)


def test_fim_judges_infill_and_chat_checks_judge_chat():
    checks = build_checks([FimCheck.Options(type="fim"), *_options("stops")], allow_commands=False)
    samples = [
        infill("1", "return a + b", "return a + b  \n"),  # trailing whitespace aside: exact
        infill("2", "return a + b", "return a - b", finish="length"),
        chat("3", "Hi."),
    ]
    results = run_checks(checks, samples)
    assert set(results[0]) == {"fim"} and set(results[2]) == {"stops"}
    assert results[0]["fim"].passed and not results[1]["fim"].passed
    assert "similarity 0." in results[1]["fim"].reason
    rates = pass_rates(results, checks.labels)
    assert rates["checks"] == {"fim": 0.5, "stops": 1.0}

    summary = fim_summary(samples)
    assert summary["examples"] == 2 and summary["exact"] == 0.5 and summary["stopped"] == 0.5
    assert 0.5 < summary["similarity"] < 1.0
    assert fim_summary([chat("4", "Hi.")]) is None


def _options(type_name: str):
    from runner.eval.checks import CHECKS

    return [CHECKS.get(type_name).Options(type=type_name)]


def test_report_rows_show_infill_base_vs_tuned():
    fim = {"base": {"exact": 0.0, "similarity": 0.25}, "tuned": {"exact": 0.5, "similarity": 0.75}}
    rows = {r[0]: r[1:] for r in comparison_rows({"fim": fim, "sides": ["base", "tuned"]})}
    assert rows["infill: exact middle"] == ("0.0%", "50.0%", "+50.0 pts")
    assert rows["infill: similarity"] == ("0.2500", "0.7500", "+0.5000")
    with_parent = {"fim": fim, "sides": ["base", "parent", "tuned"]}
    rows = {r[0]: r[1:] for r in comparison_rows(with_parent)}
    assert rows["infill: exact middle"] == ("0.0%", "n/a", "50.0%", "+50.0 pts", "n/a")
