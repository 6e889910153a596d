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

    def thresholds(self) -> dict[str, Any]:
        """The thresholds that are set, as the report shows them."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


def gate_failures(gate: GateSection, metrics: Mapping[str, Any]) -> list[str]:
    """Every missed threshold, as a sentence naming the metric, its value and the threshold.

    ``metrics`` is the stage's summary: ``loss`` and ``pass_rate`` mappings with ``base``,
    ``tuned`` and ``improvement`` (missing when not measured), and ``checks``: label -> the same.
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
