"""The report's pictures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BASE_COLOR = "#9aa5b1"
TUNED_COLOR = "#1f77b4"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(
    history: Sequence[Mapping[str, Any]], out: Path, title: str = "Training loss"
) -> Path:
    """Training (and evaluation, when logged) loss against the optimizer step."""
    plt = _pyplot()
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h and "step" in h]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    if train:
        ax.plot(
            *zip(*train, strict=True),
            color=TUNED_COLOR,
            marker="." if len(train) < 60 else None,
            label="train loss",
        )
    if evals:
        ax.plot(*zip(*evals, strict=True), color="#d62728", marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


PARENT_COLOR = "#ff7f0e"


def pass_rate_bars(comparison: Mapping[str, Any], out: Path) -> Path:
    """Grouped bars per check (and overall): base, parent (a run that continued from one) and
    fine-tuned side by side, with the values printed."""
    plt = _pyplot()
    labels = [*comparison["checks"], "overall"]
    rows = [*comparison["checks"].values(), comparison["pass_rate"]]
    sides = [("base", BASE_COLOR, "base"), ("parent", PARENT_COLOR, "parent")]
    shown = [s for s in sides if any(r.get(s[0]) is not None for r in rows)]
    shown.append(("tuned", TUNED_COLOR, "fine-tuned"))
    width = 0.8 / len(shown)
    xs = range(len(labels))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(labels) + 2), 3.8), dpi=110)
    for position, (side, color, name) in enumerate(shown):
        values = [r.get(side) for r in rows]
        offset = (position - (len(shown) - 1) / 2) * width
        bars = ax.bar(
            [x + offset for x in xs], [v or 0.0 for v in values], width, color=color, label=name
        )
        ax.bar_label(
            bars,
            labels=[f"{v:.0%}" if v is not None else "n/a" for v in values],
            fontsize=8,
            padding=2,
        )
    ax.set_xticks(list(xs), labels, rotation=20 if len(labels) > 5 else 0)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("pass rate")
    ax.set_title("Generation checks on the test prompts")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
