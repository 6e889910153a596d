"""The ``eval.gate``: minimum results a run must reach, so a recipe repository's CI can rely on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from runner.recipe.fields import Section


class GateSection(Section):
    """`eval.gate:`: minimum results; a run that misses its gate exits non-zero."""

    min_pass_rate: float | None = Field(None, ge=0, le=1)
    """Fine-tuned overall pass rate at least this."""
    min_improvement: float | None = None
    """Fine-tuned pass rate minus base pass rate at least this."""
    max_loss: float | None = None
    """Fine-tuned held-out loss at most this."""
    min_loss_improvement: float | None = None
    """Base loss minus fine-tuned loss at least this."""
    checks: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}
    """Per-check minimum pass rates, by check type."""
    min_pass_rate_per_group: float | None = Field(None, ge=0, le=1)
    """With `eval.group_by`: every group's fine-tuned pass rate at least this (ZigNet's
    "version-specific accuracy > 90 %")."""
    max_seconds_per_answer: float | None = Field(None, gt=0)
    """The fine-tuned GGUF's mean time per answer through llama.cpp, at most this many seconds."""
    max_regression: float | None = Field(None, ge=0, le=1)
    """With `continue_from`: the pass rate on the parent's test split may drop at most this much
    below the parent's (0.05 = 5 points): a new version must not forget."""
    max_loss_regression: float | None = Field(None, ge=0)
    """With `continue_from`: the held-out loss on the parent's test split may rise at most this
    much above the parent's."""

    def thresholds(self) -> dict[str, Any]:
        """The thresholds that are set, as the report shows them."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


def gate_failures(gate: GateSection, metrics: Mapping[str, Any]) -> list[str]:
    """Every missed threshold, as a sentence naming the metric, its value and the threshold.

    ``metrics`` is the stage's summary: ``loss`` and ``pass_rate`` mappings with ``base``,
    ``tuned`` and ``improvement`` (missing when not measured), ``checks``: label -> the same,
    ``groups``: group -> the overall pass rates, ``latency``: model -> answer times, and
    ``sets.parent_test``: the same numbers on the parent's test split (with a ``parent`` entry).
    A threshold on a metric that was not measured is a failure too: a gate that silently passes
    because nothing was measured would defeat its purpose.
    """
    failures: list[str] = []

    def need(section: str, key: str, name: str) -> float | None:
        value = (metrics.get(section) or {}).get(key)
        if value is None:
            failures.append(f"{name} was not measured")
        return value

    if (threshold := gate.min_pass_rate) is not None:
        value = need("pass_rate", "tuned", "pass rate")
        if value is not None and value < threshold:
            failures.append(f"pass rate {value:.3f} < min_pass_rate {threshold:g}")
    if (threshold := gate.min_improvement) is not None:
        value = need("pass_rate", "improvement", "pass-rate improvement over the base")
        if value is not None and value < threshold:
            failures.append(f"pass-rate improvement {value:+.3f} < min_improvement {threshold:g}")
    if (threshold := gate.max_loss) is not None:
        value = need("loss", "tuned", "held-out loss")
        if value is not None and value > threshold:
            failures.append(f"held-out loss {value:.4f} > max_loss {threshold:g}")
    if (threshold := gate.min_loss_improvement) is not None:
        value = need("loss", "improvement", "held-out loss improvement over the base")
        if value is not None and value < threshold:
            failures.append(
                f"held-out loss improvement {value:+.4f} < min_loss_improvement {threshold:g}"
            )
    if (threshold := gate.min_pass_rate_per_group) is not None:
        groups = metrics.get("groups") or {}
        if not groups:
            failures.append("pass rates per group were not measured (set eval.group_by)")
        for group, pair in groups.items():
            value = (pair or {}).get("tuned")
            if value is None:
                failures.append(f"pass rate of group {group} was not measured")
            elif value < threshold:
                failures.append(
                    f"pass rate of group {group} {value:.3f} < min_pass_rate_per_group "
                    f"{threshold:g}"
                )
    if (threshold := gate.max_seconds_per_answer) is not None:
        timing = (metrics.get("latency") or {}).get("tuned") or {}
        value = timing.get("mean_seconds")
        if value is None:
            failures.append("seconds per answer were not measured")
        elif value > threshold:
            failures.append(
                f"{value:.2f} seconds per answer (mean of {timing.get('answers')}) > "
                f"max_seconds_per_answer {threshold:g}"
            )
    parent_set = (metrics.get("sets") or {}).get("parent_test") or {}
    if (threshold := gate.max_regression) is not None:
        pair = parent_set.get("pass_rate") or {}
        drop = _drop(pair.get("parent"), pair.get("tuned"))
        if drop is None:
            failures.append("the pass rate on the parent's test split was not measured")
        elif drop > threshold:
            failures.append(
                f"pass rate on the parent's test split fell {drop:.3f} below the parent's "
                f"({pair['tuned']:.3f} < {pair['parent']:.3f}) > max_regression {threshold:g}"
            )
    if (threshold := gate.max_loss_regression) is not None:
        pair = parent_set.get("loss") or {}
        rise = _drop(pair.get("tuned"), pair.get("parent"))
        if rise is None:
            failures.append("the held-out loss on the parent's test split was not measured")
        elif rise > threshold:
            failures.append(
                f"held-out loss on the parent's test split rose {rise:.4f} above the parent's "
                f"({pair['tuned']:.4f} > {pair['parent']:.4f}) > max_loss_regression {threshold:g}"
            )
    checks = metrics.get("checks") or {}
    for check_type, threshold in gate.checks.items():
        labels = [label for label in checks if label.split("#")[0] == check_type]
        if not labels:
            failures.append(f"gate.checks.{check_type}: no `{check_type}` check ran")
        for label in labels:
            value = checks[label].get("tuned")
            if value is None:
                failures.append(f"{label} pass rate was not measured")
            elif value < threshold:
                failures.append(
                    f"{label} pass rate {value:.3f} < gate.checks.{check_type} {threshold:g}"
                )
    return failures


def _drop(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else before - after
