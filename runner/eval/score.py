"""Pass rates of generation checks, base versus fine-tuned, and the prompts where they differ most."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.eval.checks import CheckResult, CheckSet, Sample
from runner.eval.checks.text import similarity

Results = list[dict[str, CheckResult]]  # one dict (label -> result) per sample


def run_checks(checks: CheckSet, samples: Sequence[Sample], progress: Any = None) -> Results:
    results = []
    for sample in samples:
        results.append(checks.run(sample))
        if progress is not None:
            progress()
    return results


def pass_rates(results: Results, labels: Sequence[str]) -> dict[str, Any]:
    """Per-check pass rate (over the samples the check judges), and ``overall``: the share of
    samples that pass every check that judges them."""
    n = len(results)
    if n == 0:
        return {"overall": None, "checks": {label: None for label in labels}, "samples": 0}
    per_check = {}
    for label in labels:
        judged = [r[label].passed for r in results if label in r]
        per_check[label] = sum(judged) / len(judged) if judged else None
    overall = sum(all(res.passed for res in r.values()) for r in results) / n
    return {"overall": overall, "checks": per_check, "samples": n}


def _pair(base: float | None, tuned: float | None) -> dict[str, float | None]:
    improvement = None if base is None or tuned is None else tuned - base
    return {"base": base, "tuned": tuned, "improvement": improvement}


def compare(
    base: Mapping[str, Any] | None, tuned: Mapping[str, Any], labels: Sequence[str]
) -> dict[str, Any]:
    """Side by side: ``pass_rate`` and ``checks[label]`` as {base, tuned, improvement}."""
    base = base or {"overall": None, "checks": {}}
    return {
        "pass_rate": _pair(base["overall"], tuned["overall"]),
        "checks": {
            label: _pair(base["checks"].get(label), tuned["checks"][label]) for label in labels
        },
    }


def most_different(
    base: Sequence[Sample],
    tuned: Sequence[Sample],
    base_results: Results,
    tuned_results: Results,
    n: int = 5,
) -> list[dict[str, Any]]:
    """The ``n`` prompts where the two models differ most.

    Ranked by how many more checks one model passes than the other, then by how different the
    two answers are (1 - similarity); each entry carries both answers and their check results.
    """
    rows = []
    for b, t, br, tr in zip(base, tuned, base_results, tuned_results, strict=True):
        passed_b = sum(r.passed for r in br.values())
        passed_t = sum(r.passed for r in tr.values())
        distance = 1.0 - similarity(b.answer, t.answer)
        rows.append(
            {
                "id": t.id,
                "prompt": t.messages,
                "reference": t.reference,
                "base": {
                    "answer": b.answer,
                    "finish_reason": b.finish_reason,
                    "passed": passed_b,
                    "checks": {k: vars(v) for k, v in br.items()},
                },
                "tuned": {
                    "answer": t.answer,
                    "finish_reason": t.finish_reason,
                    "passed": passed_t,
                    "checks": {k: vars(v) for k, v in tr.items()},
                },
                "check_difference": passed_t - passed_b,
                "text_distance": round(distance, 4),
            }
        )
    rows.sort(key=lambda r: (abs(r["check_difference"]), r["text_distance"]), reverse=True)
    return rows[:n]
