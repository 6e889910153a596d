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


def pass_rate_bars(comparison: Mapping[str, Any], out: Path) -> Path:
    """Grouped bars per check (and overall): base beside fine-tuned, with the values printed."""
    plt = _pyplot()
    labels = [*comparison["checks"], "overall"]
    rows = [*comparison["checks"].values(), comparison["pass_rate"]]
    base = [r["base"] for r in rows]
    tuned = [r["tuned"] or 0.0 for r in rows]
    has_base = any(b is not None for b in base)
    width = 0.38 if has_base else 0.6
    xs = range(len(labels))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(labels) + 2), 3.8), dpi=110)
    if has_base:
        bars = ax.bar(
            [x - width / 2 for x in xs],
            [b or 0.0 for b in base],
            width,
            color=BASE_COLOR,
            label="base",
        )
        ax.bar_label(
            bars,
            labels=[f"{b:.0%}" if b is not None else "n/a" for b in base],
            fontsize=8,
            padding=2,
        )
    offset = width / 2 if has_base else 0.0
    bars = ax.bar([x + offset for x in xs], tuned, width, color=TUNED_COLOR, label="fine-tuned")
    ax.bar_label(bars, labels=[f"{t:.0%}" for t in tuned], fontsize=8, padding=2)
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
