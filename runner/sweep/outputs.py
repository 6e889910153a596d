"""What a sweep leaves in its folder: ``sweep.csv``, ``sweep.md`` with a picture of the metric
against each swept key, and ``best.yaml``, the winner's resolved recipe."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.sweep.section import SweepSection
from runner.train.config import dump_yaml

# Optuna's trial states, as the table names them.
STATUS = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}
NUMBERS = (
    "train_first_loss",
    "train_last_loss",
    "train_eval_loss",
    "held_out_loss",
    "base_loss",
    "pass_rate",
)


def collect(study: Any, section: SweepSection) -> tuple[list[dict[str, Any]], dict | None]:
    """Every trial as a row (sorted: finished ones by the metric, best first, then the rest),
    and the best finished one."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("abandoned"):
            continue  # re-run under another number, or a surplus grid draw
        values = trial.user_attrs.get("values") or dict(trial.params)
        rows.append(
            {
                "number": trial.number,
                "status": STATUS.get(trial.state.name, trial.state.name.lower()),
                "values": values,
                "value": trial.value if trial.state.name == "COMPLETE" else None,
                "numbers": trial.user_attrs.get("numbers") or {},
                "intermediate": dict(sorted(trial.intermediate_values.items())),
                "seconds": trial.user_attrs.get("seconds"),
                "run_dir": trial.user_attrs.get("run_dir"),
                "note": trial.user_attrs.get("note", ""),
            }
        )
    sign = 1 if section.goal() == "minimize" else -1
    rows.sort(
        key=lambda r: (
            r["value"] is None,
            sign * r["value"] if r["value"] is not None else 0,
            r["number"],
        )
    )
    best = rows[0] if rows and rows[0]["value"] is not None else None
    return rows, best


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(path: Path, section: SweepSection, rows: Sequence[dict[str, Any]]) -> None:
    keys = section.swept_keys()
    header = ["trial", "status", *keys, section.metric, *NUMBERS, "seconds", "run_dir", "note"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in rows:
            writer.writerow(
                [
                    r["number"],
                    r["status"],
                    *(_cell(r["values"].get(k)) for k in keys),
                    _cell(r["value"]),
                    *(_cell(r["numbers"].get(n)) for n in NUMBERS),
                    _cell(r["seconds"]),
                    r["run_dir"] or "",
                    r["note"],
                ]
            )


def plot_metric(folder: Path, section: SweepSection, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """The metric against each swept key (finished trials as dots, the best as a star; a log
    axis for log ranges and for positive numbers spanning a factor of 10 or more)."""
    from runner.eval.plots import _pyplot
    from runner.sweep.section import LogUniform

    plt = _pyplot()
    done = [r for r in rows if r["value"] is not None]
    images = []
    for key in section.swept_keys():
        points = [(r["values"].get(key), r["value"]) for r in done if key in r["values"]]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
        xs = [x for x, _ in points]
        numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
        if numeric:
            ax.scatter(xs, [y for _, y in points], color="#1f77b4")
            best = done[0]  # rows are sorted best first
            if key in best["values"]:
                ax.scatter(
                    [best["values"][key]],
                    [best["value"]],
                    marker="*",
                    s=220,
                    color="#d62728",
                    label=f"best (trial {best['number']})",
                    zorder=3,
                )
                ax.legend(fontsize=8)
            positive = all(x > 0 for x in xs)
            spans = positive and max(xs) / min(xs) >= 10
            if isinstance(section.params.get(key), LogUniform) or spans:
                ax.set_xscale("log")
        else:
            labels = list(dict.fromkeys(str(x) for x in xs))
            ax.scatter([labels.index(str(x)) for x in xs], [y for _, y in points])
            ax.set_xticks(range(len(labels)), labels, rotation=15)
        ax.set_xlabel(key)
        ax.set_ylabel(section.metric)
        ax.set_title(f"{section.metric} ({section.goal()}) against {key}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = folder / f"metric-vs-{key.replace('.', '_')}.png"
        fig.savefig(path)
        plt.close(fig)
        images.append(path)
    return images


def render_markdown(
    section: SweepSection,
    rows: Sequence[dict[str, Any]],
    best: dict[str, Any] | None,
    images: Sequence[Path],
    promoted: Any,
) -> str:
    keys = section.swept_keys()
    lines = [
        "# Sweep",
        "",
        f"- method: {section.method}, metric: `{section.metric}` ({section.goal()}), "
        f"trials: {len(rows)}",
        f"- best: trial {best['number']}, {section.metric} = {_cell(best['value'])}, "
        + ", ".join(f"`{k}` = {_cell(v)}" for k, v in best["values"].items())
        if best
        else "- best: none (no trial finished)",
    ]
    if best:
        lines.append("- best.yaml: the winner's resolved recipe (`recipe run best.yaml`)")
    if promoted is not None:
        state = "failed: " + str(promoted.error) if promoted.error else "finished"
        lines.append(
            f"- promoted: the winner with the recipe's exports, {state} ({promoted.run_dir})"
        )
    header = ["trial", "status", *(f"`{k}`" for k in keys), f"`{section.metric}`"]
    header += ["train loss first / last", "validation loss", "held-out loss", "pass rate"]
    header += ["seconds", "note"]
    lines += ["", f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for r in rows:
        n = r["numbers"]
        first, last = _cell(n.get("train_first_loss")), _cell(n.get("train_last_loss"))
        cells = [
            str(r["number"]),
            r["status"],
            *(_cell(r["values"].get(k)) for k in keys),
            _cell(r["value"]),
            f"{first} / {last}" if first or last else "",
            _cell(n.get("train_eval_loss"))
            or (_cell(list(r["intermediate"].values())[-1]) if r["intermediate"] else ""),
            _cell(n.get("held_out_loss")),
            f"{n['pass_rate']:.1%}" if n.get("pass_rate") is not None else "",
            _cell(r["seconds"]),
            r["note"].replace("|", "\\|").replace("\n", " ")[:200],
        ]
        lines.append(f"| {' | '.join(cells)} |")
    for image in images:
        lines += ["", f"![{image.stem}]({image.name})"]
    return "\n".join(lines) + "\n"


def best_recipe(
    path: str, user_overrides: Sequence[str], best: dict[str, Any], laptop: bool = False
) -> dict[str, Any]:
    """The winner's resolved recipe as data: the swept values applied, paths absolute, and no
    `sweep:` (running it is one run, not another sweep)."""
    from runner.recipe.load import load_recipe
    from runner.sweep.section import overrides

    recipe = load_recipe(path, [*user_overrides, *overrides(best["values"])], laptop=laptop)
    data = recipe.to_dict()
    data.pop("sweep", None)
    return {k: v for k, v in data.items() if v is not None}


def write_outputs(
    folder: Path,
    path: str,
    user_overrides: Sequence[str],
    section: SweepSection,
    rows: Sequence[dict[str, Any]],
    best: dict[str, Any] | None,
    promoted: Any = None,
    laptop: bool = False,
) -> None:
    write_csv(folder / "sweep.csv", section, rows)
    images = plot_metric(folder, section, rows)
    (folder / "sweep.md").write_text(
        render_markdown(section, rows, best, images, promoted), encoding="utf-8"
    )
    if best is None:
        return
    data = best_recipe(path, user_overrides, best, laptop)
    header = (
        f"# The best trial ({best['number']}) of the sweep in {folder}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}:\n"
        f"# {section.metric} = {best['value']:.6g} with "
        + ", ".join(f"{k}={v}" for k, v in best["values"].items())
        + ".\n# The recipe it came from, every value resolved (paths are absolute).\n"
    )
    (folder / "best.yaml").write_text(header + dump_yaml(data), encoding="utf-8")
