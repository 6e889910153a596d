"""``recipe compare RUN RUN...``: several evaluated runs side by side on the prompts they share.

The A/B test the seeds do by hand (Meton: "compare old vs new versions on test queries"): for
every test set the runs were all evaluated on (a fixed ``eval.test_set`` is the usual one), a
table of each run's numbers, pictures, and the prompts whose answers differ most, every run's
answer beside the others. Read from each run's ``eval/results.json`` and ``eval/samples.jsonl``;
nothing is run again.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UserError
from runner.eval.checks.text import similarity


@dataclass
class EvaluatedRun:
    """One run's evaluation: its label, numbers per test set, and fine-tuned answers by
    (set, prompt id)."""

    path: Path
    label: str
    results: dict[str, Any]
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def sets(self) -> dict[str, Any]:
        """Numbers per test set (an evaluation from before sets existed has one: ``test``)."""
        sets = self.results.get("sets")
        if isinstance(sets, dict) and sets:
            return sets
        keys = ("loss", "pass_rate", "checks", "groups", "latency")
        return {"test": {k: self.results.get(k) for k in keys}}


def _label(run_dir: Path) -> str:
    lineage = _read_json(run_dir / "lineage.json")
    lock = _read_json(run_dir / "run.lock.json")
    name = lineage.get("name") or lock.get("recipe_name") or run_dir.parent.name
    version = lineage.get("version") or (lock.get("recipe") or {}).get("version")
    return f"{name}:{version}" if version else f"{name}/{run_dir.name}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_run(run_dir: Path) -> EvaluatedRun:
    """A finished evaluation (kept also when its gate was missed)."""
    folder = run_dir / "eval"
    results = _read_json(folder / "results.json")
    if not results:
        raise UserError(
            f"{run_dir} has no evaluation (eval/results.json): run it with `eval:` enabled first"
        )
    run = EvaluatedRun(run_dir, _label(run_dir), results)
    samples = folder / "samples.jsonl"
    if samples.is_file():
        for line in samples.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("model") == "tuned":
                run.answers[(row.get("set", "test"), str(row["id"]))] = row
    return run


def _passed(row: Mapping[str, Any]) -> bool:
    return all(c.get("passed") for c in (row.get("checks") or {}).values())


def shared_prompts(runs: Sequence[EvaluatedRun]) -> dict[str, list[str]]:
    """Per test set, the prompt ids every run answered (in the first run's order)."""
    shared: dict[str, list[str]] = {}
    first = runs[0]
    for key in first.answers:
        name, prompt = key
        if all(key in r.answers for r in runs[1:]):
            shared.setdefault(name, []).append(prompt)
    return shared


def table(runs: Sequence[EvaluatedRun], shared: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """One row per run and shared test set: its numbers there, and its pass rate on exactly the
    prompts every run answered (so that runs evaluated on more prompts compare fairly)."""
    rows = []
    for name, ids in shared.items():
        for run in runs:
            numbers = run.sets().get(name) or {}
            answers = [run.answers[(name, i)] for i in ids]
            timed = [a["seconds"] for a in answers if a.get("seconds") is not None]
            tokens = sum(a.get("tokens") or 0 for a in answers if a.get("seconds") is not None)
            checks = {}
            for label in (answers[0].get("checks") or {}) if answers else {}:
                checks[label] = sum(bool(a["checks"][label]["passed"]) for a in answers) / len(
                    answers
                )
            rows.append(
                {
                    "set": name,
                    "run": run.label,
                    "path": str(run.path),
                    "prompts": len(ids),
                    "pass_rate": sum(_passed(a) for a in answers) / len(answers),
                    "checks": checks,
                    "held_out_loss": ((numbers.get("loss") or {}).get("tuned")),
                    "mean_seconds": sum(timed) / len(timed) if timed else None,
                    "tokens_per_second": tokens / sum(timed) if timed and sum(timed) else None,
                }
            )
    return rows


def most_different(
    runs: Sequence[EvaluatedRun], shared: Mapping[str, list[str]], n: int = 5
) -> list[dict[str, Any]]:
    """The ``n`` shared prompts where the runs' answers differ most: by the spread of checks
    passed, then by the mean text distance between every two answers."""
    scored = []
    for name, ids in shared.items():
        for prompt in ids:
            answers = [r.answers[(name, prompt)] for r in runs]
            passed = [
                sum(bool(c["passed"]) for c in (a.get("checks") or {}).values()) for a in answers
            ]
            pairs = list(itertools.combinations([a.get("answer", "") for a in answers], 2))
            distance = sum(1 - similarity(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0
            scored.append(
                {
                    "set": name,
                    "id": prompt,
                    "prompt": answers[0].get("prompt"),
                    "reference": answers[0].get("reference"),
                    "spread": max(passed) - min(passed),
                    "text_distance": round(distance, 4),
                    "answers": [
                        {
                            "run": r.label,
                            "answer": a.get("answer", ""),
                            "finish_reason": a.get("finish_reason"),
                            "passed": p,
                            "failed": [
                                f"{k}: {v.get('reason')}"
                                for k, v in (a.get("checks") or {}).items()
                                if not v.get("passed")
                            ],
                        }
                        for r, a, p in zip(runs, answers, passed, strict=True)
                    ],
                }
            )
    scored.sort(key=lambda row: (row["spread"], row["text_distance"]), reverse=True)
    return scored[:n]


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if kind == "rate":
        return f"{value:.1%}"
    return f"{value:.2f}" if kind == "s" else f"{value:.4f}"


def _fence(text: str) -> str:
    ticks = "`" * max(3, max((len(r) for r in text.split("\n") if set(r) == {"`"}), default=0) + 1)
    return f"{ticks}\n{text.rstrip()}\n{ticks}"


def _prompt_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return "(prompt not recorded by this run's evaluation)"
    return "\n\n".join(f"[{m['role']}] {m['content']}" for m in messages)


def render_markdown(report: Mapping[str, Any], images: Sequence[str]) -> str:
    lines = ["# Comparison", ""]
    lines += [f"- {run['label']}: `{run['path']}`" for run in report["runs"]]
    labels = sorted({label for row in report["table"] for label in row["checks"]})
    for name in report["shared"]:
        rows = [row for row in report["table"] if row["set"] == name]
        lines += ["", f"## {name} ({rows[0]['prompts']} prompts every run answered)", ""]
        header = ["run", "held-out loss", "pass rate", *(f"`{x}`" for x in labels)]
        header += ["s / answer", "tokens/s"]
        lines += [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
        for row in rows:
            cells = [
                row["run"],
                _fmt(row["held_out_loss"]),
                _fmt(row["pass_rate"], "rate"),
                *(_fmt(row["checks"].get(x), "rate") for x in labels),
                _fmt(row["mean_seconds"], "s"),
                _fmt(row["tokens_per_second"], "s"),
            ]
            lines.append(f"| {' | '.join(cells)} |")
    for image in images:
        lines += ["", f"![{image}]({image})"]
    diffs = report["differences"]
    if diffs:
        lines += ["", f"## The {len(diffs)} prompts where the runs differ most"]
    for number, row in enumerate(diffs, 1):
        lines += [
            "",
            f"### {number}. `{row['id']}` ({row['set']}; checks passed: "
            + ", ".join(f"{a['run']} {a['passed']}" for a in row["answers"])
            + ")",
            "",
            "Prompt:",
            "",
            _fence(_prompt_text(row["prompt"])),
        ]
        for answer in row["answers"]:
            failed = " failed " + "; ".join(answer["failed"]) if answer["failed"] else ""
            lines += [
                "",
                f"**{answer['run']}** (finish: {answer['finish_reason']}){failed}",
                "",
                _fence(answer["answer"]),
            ]
    return "\n".join(lines) + "\n"


def render_html(report: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    import base64

    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Comparison</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
        "pre{white-space:pre-wrap;margin:0;font-size:12px}</style></head><body><h1>Comparison</h1>"
    ]
    parts.append(
        "<ul>"
        + "".join(f"<li>{e(r['label'])}: {e(r['path'])}</li>" for r in report["runs"])
        + "</ul>"
    )
    for name in report["shared"]:
        rows = [row for row in report["table"] if row["set"] == name]
        parts.append(
            f"<h2>{e(name)}</h2><table><tr><th>run</th><th>held-out loss</th>"
            "<th>pass rate</th><th>s / answer</th><th>tokens/s</th></tr>"
        )
        for row in rows:
            parts.append(
                f"<tr><td>{e(row['run'])}</td><td>{_fmt(row['held_out_loss'])}</td>"
                f"<td>{_fmt(row['pass_rate'], 'rate')}</td><td>{_fmt(row['mean_seconds'], 's')}</td>"
                f"<td>{_fmt(row['tokens_per_second'], 's')}</td></tr>"
            )
        parts.append("</table>")
    for name, path in images.items():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{e(name)}' src='data:image/png;base64,{data}'></figure>")
    for number, row in enumerate(report["differences"], 1):
        parts.append(
            f"<h3>{number}. <code>{e(row['id'])}</code> ({e(row['set'])})</h3>"
            f"<pre>{e(_prompt_text(row['prompt']))}</pre><table class='side'><tr>"
            + "".join(f"<th>{e(a['run'])}</th>" for a in row["answers"])
            + "</tr><tr>"
            + "".join(
                f"<td><pre>{e(a['answer'])}</pre><p>finish: {e(str(a['finish_reason']))}; "
                f"checks passed: {a['passed']}</p></td>"
                for a in row["answers"]
            )
            + "</tr></table>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def pictures(report: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Pass rate (and held-out loss, where measured) of each run, per shared test set."""
    from runner.eval.plots import _pyplot

    plt = _pyplot()
    images = {}
    for name in report["shared"]:
        rows = [row for row in report["table"] if row["set"] == name]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
        labels = [row["run"] for row in rows]
        rates = [row["pass_rate"] for row in rows]
        bars = axes[0].bar(labels, rates, color="#1f77b4")
        axes[0].bar_label(bars, labels=[f"{r:.0%}" for r in rates], fontsize=8)
        axes[0].set_ylim(0, 1.15)
        axes[0].set_title(f"pass rate on {name}")
        losses = [row["held_out_loss"] for row in rows]
        if any(v is not None for v in losses):
            bars = axes[1].bar(labels, [v or 0.0 for v in losses], color="#ff7f0e")
            axes[1].bar_label(bars, labels=[_fmt(v) for v in losses], fontsize=8)
        axes[1].set_title(f"held-out loss on {name} (lower is better)")
        for axis in axes:
            axis.tick_params(axis="x", rotation=15)
            axis.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out / f"compare-{name}.png"
        fig.savefig(path)
        plt.close(fig)
        images[path.name] = path
    return images


def compare_runs(run_dirs: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write ``compare.md``, ``compare.html``, ``compare.json`` and the pictures into ``out``."""
    if len(run_dirs) < 2:
        raise UserError("recipe compare needs at least two runs")
    runs = [load_run(path) for path in run_dirs]
    shared = shared_prompts(runs)
    if not shared:
        listed = ", ".join(r.label for r in runs)
        raise UserError(
            f"{listed}: no test prompt was answered by every run; compare runs evaluated on the "
            "same test set (a fixed eval.test_set, or the same data)"
        )
    report = {
        "runs": [{"label": r.label, "path": str(r.path)} for r in runs],
        "shared": {name: len(ids) for name, ids in shared.items()},
        "table": table(runs, shared),
        "differences": most_different(runs, shared),
    }
    out.mkdir(parents=True, exist_ok=True)
    images = pictures(report, out)
    (out / "compare.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "compare.md").write_text(render_markdown(report, list(images)), encoding="utf-8")
    (out / "compare.html").write_text(render_html(report, images), encoding="utf-8")
    return report
