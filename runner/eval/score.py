"""Pass rates of generation checks, base (and parent) versus fine-tuned, answer times, and the
prompts where two models differ most."""

from __future__ import annotations

import statistics
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


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def side_by_side(values: Mapping[str, float | None], lower_is_better: bool = False) -> dict:
    """One metric of each model: ``base``, ``tuned``, ``improvement`` (the fine-tuned model's
    gain over the base), and with a parent, ``parent`` and ``vs_parent`` (its gain over it).
    A gain is positive when the fine-tuned model is better (a lower loss, a higher rate)."""
    sign = -1.0 if lower_is_better else 1.0
    base, tuned = values.get("base"), values.get("tuned")
    gain = _difference(tuned, base)
    row: dict[str, Any] = {
        "base": base,
        "tuned": tuned,
        "improvement": None if gain is None else sign * gain,
    }
    if "parent" in values:
        parent = values["parent"]
        over_parent = _difference(tuned, parent)
        row["parent"] = parent
        row["vs_parent"] = None if over_parent is None else sign * over_parent
    return row


def compare(rates: Mapping[str, Mapping[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Side by side for every model (``rates``: model -> ``pass_rates``): ``pass_rate`` and
    ``checks[label]`` as ``side_by_side`` rows."""
    empty = {"overall": None, "checks": {}}
    sides = {side: rates.get(side, empty) for side in ("base", *rates)}

    def row(pick) -> dict[str, Any]:
        return side_by_side({side: pick(r) for side, r in sides.items()})

    return {
        "pass_rate": row(lambda r: r["overall"]),
        "checks": {label: row(lambda r, label=label: r["checks"].get(label)) for label in labels},
    }


def latency(samples: Sequence[Sample]) -> dict[str, Any] | None:
    """Answer times through llama.cpp: mean, median, p95 and slowest seconds per answer, and the
    generation speed in tokens per second (None when no answer was timed)."""
    times = [s.seconds for s in samples if s.seconds is not None]
    if not times:
        return None
    ordered = sorted(times)
    tokens = sum(s.tokens or 0 for s in samples if s.seconds is not None)
    total = sum(times)
    return {
        "answers": len(times),
        "mean_seconds": round(statistics.fmean(times), 4),
        "p50_seconds": round(ordered[len(ordered) // 2], 4),
        "p95_seconds": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 4),
        "max_seconds": round(ordered[-1], 4),
        "tokens_per_second": round(tokens / total, 2) if total > 0 else None,
    }


def most_different(
    base: Sequence[Sample],
    tuned: Sequence[Sample],
    base_results: Results,
    tuned_results: Results,
    n: int = 5,
    names: tuple[str, str] = ("base", "tuned"),
) -> list[dict[str, Any]]:
    """The ``n`` prompts where two models differ most.

    Ranked by how many more checks one model passes than the other, then by how different the
    two answers are (1 - similarity); each entry carries both answers (under ``names``) and their
    check results.
    """
    left, right = names
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
                "sides": [left, right],
                left: {
                    "answer": b.answer,
                    "finish_reason": b.finish_reason,
                    "passed": passed_b,
                    "checks": {k: vars(v) for k, v in br.items()},
                },
                right: {
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
