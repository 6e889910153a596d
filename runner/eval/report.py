"""``eval/report.md`` and a self-contained ``eval/report.html`` (pictures inlined as base64)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Pictures in report order: file name under eval/ -> caption.
IMAGES = {
    "loss_curve.png": "Training loss (Axolotl's logged losses)",
    "token_lengths.png": "Token lengths of the dataset (data stage)",
    "pass_rates.png": "Pass rate per check, base vs fine-tuned",
}


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "diff_rate":
        return f"{value * 100:+.1f} pts"
    if kind == "diff":
        return f"{value:+.4f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def has_parent(results: Mapping[str, Any]) -> bool:
    return "parent" in (results.get("sides") or ())


def columns(results: Mapping[str, Any]) -> tuple[str, ...]:
    """The header of the comparison tables: three models when the run has a parent."""
    if has_parent(results):
        return ("metric", "base", "parent", "fine-tuned", "vs base", "vs parent")
    return ("metric", "base", "fine-tuned", "improvement")


def _cells(pair: Mapping[str, Any], parent: bool, kind: str, diff: str) -> tuple[str, ...]:
    values = [_fmt(pair.get("base"), kind)]
    if parent:
        values.append(_fmt(pair.get("parent"), kind))
    values += [_fmt(pair.get("tuned"), kind), _fmt(pair.get("improvement"), diff)]
    if parent:
        values.append(_fmt(pair.get("vs_parent"), diff))
    return tuple(values)


def comparison_rows(
    results: Mapping[str, Any], parent: bool | None = None
) -> list[tuple[str, ...]]:
    """(metric, base, [parent,] fine-tuned, improvement[, vs parent]) rows; loss differences are
    the other model's loss minus the fine-tuned one's (positive: the fine-tune is better)."""
    parent = has_parent(results) if parent is None else parent
    rows = []
    loss = results.get("loss") or {}
    if loss:
        label = "held-out loss (lower is better)"
        where, primary = loss.get("set"), results.get("primary")
        if where and primary and where != primary:
            label = f"held-out loss on the {where} split (lower is better)"
        rows.append((label, *_cells(loss, parent, "", "diff")))
        ppl = loss.get("perplexity") or {}
        cells = [_fmt(ppl.get("base"))] + ([_fmt(ppl.get("parent"))] if parent else [])
        cells += [_fmt(ppl.get("tuned")), ""] + ([""] if parent else [])
        rows.append(("perplexity", *cells))
    for label, pair in (results.get("checks") or {}).items():
        rows.append((f"check `{label}`", *_cells(pair, parent, "rate", "diff_rate")))
    rows.extend(_fim_rows(results.get("fim"), parent))
    pair = results.get("pass_rate")
    if pair:
        rows.append(("all checks pass", *_cells(pair, parent, "rate", "diff_rate")))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return [
        f"| {' | '.join(header)} |",
        "|" + "---|" * len(header),
        *(f"| {' | '.join(row)} |" for row in rows),
    ]


def _group_labels(groups: Mapping[str, Any]) -> list[str]:
    return list(
        dict.fromkeys(label for pair in groups.values() for label in pair.get("checks", {}))
    )


def group_rows(results: Mapping[str, Any], groups: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Per group: its prompts, the fine-tuned model's pass rate of each check, then the share
    passing every check for each model."""
    parent = has_parent(results)
    labels = _group_labels(groups)
    rows = []
    for group, pair in groups.items():
        checks = pair.get("checks") or {}
        cells = [_fmt((checks.get(label) or {}).get("tuned"), "rate") for label in labels]
        cells.append(_fmt(pair.get("base"), "rate"))
        if parent:
            cells.append(_fmt(pair.get("parent"), "rate"))
        cells.append(_fmt(pair.get("tuned"), "rate"))
        rows.append((group, str(pair.get("samples", "")), *cells))
    return rows


def group_header(results: Mapping[str, Any]) -> tuple[str, ...]:
    key = results.get("group_by") or "group"
    labels = tuple(
        f"`{label}` (fine-tuned)" for label in _group_labels(results.get("groups") or {})
    )
    models = ("base", "parent", "fine-tuned") if has_parent(results) else ("base", "fine-tuned")
    return (key, "prompts", *labels, *(f"all checks: {m}" for m in models))


LATENCY_HEADER = ("model", "answers", "mean s", "p95 s", "max s", "tokens/s")


def latency_rows(latency: Mapping[str, Any]) -> list[tuple[str, ...]]:
    names = {"base": "base", "parent": "parent", "tuned": "fine-tuned"}
    rows = []
    for side, t in latency.items():
        if not t:
            continue
        rows.append(
            (
                names.get(side, side),
                str(t["answers"]),
                f"{t['mean_seconds']:.2f}",
                f"{t['p95_seconds']:.2f}",
                f"{t['max_seconds']:.2f}",
                _fmt(t.get("tokens_per_second")),
            )
        )
    return rows


def other_sets(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The test sets besides the primary one, in report order."""
    from runner.eval.stage import SETS

    primary = results.get("primary")
    return [(n, s) for n, s in (results.get("sets") or {}).items() if n != primary and n in SETS]


def _fim_rows(fim: Mapping[str, Any] | None, parent: bool) -> list[tuple[str, ...]]:
    """Fill-in-the-middle on held-out infill rows: exact match and mean similarity (the parent
    of a continued run is not asked for infill: its cells stay empty)."""
    if not fim:
        return []
    rows = []
    for key, name in (("exact", "infill: exact middle"), ("similarity", "infill: similarity")):
        base, tuned = (fim.get(side, {}).get(key) for side in ("base", "tuned"))
        diff = None if base is None or tuned is None else tuned - base
        pair = {"base": base, "tuned": tuned, "improvement": diff}
        kind = "rate" if key == "exact" else ""
        rows.append((name, *_cells(pair, parent, kind, "diff_rate" if key == "exact" else "diff")))
    return rows


def _fence(text: str, language: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _prompt_text(messages: list[Mapping[str, str]]) -> str:
    return "\n\n".join(f"[{m['role']}] {m['content']}" for m in messages)


def _gate_line(gate: Mapping[str, Any] | None) -> str:
    if not gate or not gate.get("thresholds"):
        return "no gate set"
    if gate.get("passed"):
        return "PASSED"
    return "MISSED: " + "; ".join(gate.get("failures", []))


def _side_title(side: str) -> str:
    return {"base": "Base", "parent": "Parent", "tuned": "Fine-tuned"}.get(side, side)


def render_markdown(results: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    from runner.eval.stage import SETS

    recipe = results["recipe"]
    primary = results.get("primary", "test")
    lines = [
        f"# Evaluation: {recipe['name']}",
        "",
        f"- eval stage key: `{recipe['stage_key'][:16]}`",
        f"- test prompts: {results['data']['test_cases']} in {SETS.get(primary, primary)} "
        f"(generation on {results.get('generated', 0)})",
        f"- gate: {_gate_line(results.get('gate'))}",
    ]
    parent = results.get("parent")
    if parent:
        named = parent.get("version") or parent.get("run") or parent.get("path")
        lines.append(f"- continued from: {parent.get('name') or ''} {named} ({parent['path']})")
    for note in results.get("notes", []):
        lines.append(f"- note: {note}")
    counts = results["data"].get("counts") or []
    if counts:
        lines += ["", "## Data", "", "| count | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in counts]
    title = "Base, parent and fine-tuned" if has_parent(results) else "Base vs fine-tuned"
    lines += ["", f"## {title}", ""]
    lines += _table(columns(results), comparison_rows(results))
    for name, numbers in other_sets(results):
        lines += ["", f"## On {SETS[name]} ({numbers.get('cases', 0)} prompts)", ""]
        lines += _table(columns(results), comparison_rows(numbers, has_parent(results)))
    if results.get("groups"):
        lines += ["", f"## Pass rate per `{results.get('group_by')}`", ""]
        lines += _table(group_header(results), group_rows(results, results["groups"]))
    timed = latency_rows(results.get("latency") or {})
    if timed:
        lines += ["", "## Time per answer (llama.cpp, this machine)", ""]
        lines += _table(LATENCY_HEADER, timed)
    for name, caption in IMAGES.items():
        if name in images:
            lines += ["", f"![{caption}]({images[name].name})"]
    diffs = results.get("differences") or []
    if diffs:
        lines += ["", f"## The {len(diffs)} prompts where the models differ most"]
    for n, row in enumerate(diffs, 1):
        left, right = row.get("sides") or ("base", "tuned")
        lines += [
            "",
            f"### {n}. `{row['id']}` (checks passed: {_side_title(left).lower()} "
            f"{row[left]['passed']}, {_side_title(right).lower()} {row[right]['passed']})",
            "",
            "Prompt:",
            "",
            _fence(_prompt_text(row["prompt"])),
        ]
        for side in (left, right):
            failed = [
                f"{k}: {v['reason']}" for k, v in row[side]["checks"].items() if not v["passed"]
            ]
            lines += [
                "",
                f"**{_side_title(side)}** (finish: {row[side]['finish_reason']})"
                + (" failed " + "; ".join(failed) if failed else ""),
                "",
                _fence(row[side]["answer"]),
            ]
    return "\n".join(lines) + "\n"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:8px;overflow-x:auto;white-space:pre-wrap;
margin:0;font-size:12px}.side{width:100%;table-layout:fixed}.side td{vertical-align:top}
.fail{color:#b00}.pass{color:#070}figure{margin:1em 0}img{max-width:100%}
"""


def _html_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(results: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    from runner.eval.stage import SETS

    e = html.escape
    recipe = results["recipe"]
    gate = results.get("gate") or {}
    gate_class = "pass" if gate.get("passed", True) else "fail"
    primary = results.get("primary", "test")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation: {e(recipe['name'])}"
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation: {e(recipe['name'])}</h1><ul>",
        f"<li>eval stage key: <code>{e(recipe['stage_key'][:16])}</code></li>",
        f"<li>test prompts: {results['data']['test_cases']} in {e(SETS.get(primary, primary))} "
        f"(generation on {results.get('generated', 0)})</li>",
        f"<li>gate: <span class='{gate_class}'>{e(_gate_line(gate))}</span></li>",
    ]
    parts += [f"<li>note: {e(note)}</li>" for note in results.get("notes", [])]
    parts.append("</ul>")
    counts = results["data"].get("counts") or []
    if counts:
        parts.append("<h2>Data</h2><table><tr><th>count</th><th>value</th></tr>")
        parts += [f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in counts]
        parts.append("</table>")
    title = "Base, parent and fine-tuned" if has_parent(results) else "Base vs fine-tuned"
    parts.append(f"<h2>{title}</h2>")
    parts.append(_html_table(columns(results), comparison_rows(results)))
    for name, numbers in other_sets(results):
        parts.append(f"<h2>On {e(SETS[name])} ({numbers.get('cases', 0)} prompts)</h2>")
        parts.append(_html_table(columns(results), comparison_rows(numbers, has_parent(results))))
    if results.get("groups"):
        parts.append(f"<h2>Pass rate per <code>{e(str(results.get('group_by')))}</code></h2>")
        parts.append(_html_table(group_header(results), group_rows(results, results["groups"])))
    timed = latency_rows(results.get("latency") or {})
    if timed:
        parts.append("<h2>Time per answer (llama.cpp, this machine)</h2>")
        parts.append(_html_table(LATENCY_HEADER, timed))
    parts += [_img(images[name], caption) for name, caption in IMAGES.items() if name in images]
    diffs = results.get("differences") or []
    if diffs:
        parts.append(f"<h2>The {len(diffs)} prompts where the models differ most</h2>")
    for n, row in enumerate(diffs, 1):
        left, right = row.get("sides") or ("base", "tuned")
        parts.append(
            f"<h3>{n}. <code>{e(row['id'])}</code></h3><pre>{e(_prompt_text(row['prompt']))}"
            f"</pre><table class='side'><tr><th>{e(_side_title(left))}</th>"
            f"<th>{e(_side_title(right))}</th></tr><tr>"
        )
        for side in (left, right):
            checks = "".join(
                f"<li class='{'pass' if v['passed'] else 'fail'}'>{e(k)}: {e(v['reason'])}</li>"
                for k, v in row[side]["checks"].items()
            )
            parts.append(
                f"<td><pre>{e(row[side]['answer'])}</pre><p>finish: "
                f"{e(row[side]['finish_reason'])}</p><ul>{checks}</ul></td>"
            )
        parts.append("</tr></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    out_dir: Path, results: Mapping[str, Any], images: Mapping[str, Path]
) -> tuple[Path, Path]:
    """Write ``report.md`` (pictures beside it) and ``report.html`` (pictures inlined)."""
    md = out_dir / "report.md"
    page = out_dir / "report.html"
    md.write_text(render_markdown(results, images), encoding="utf-8")
    page.write_text(render_html(results, images), encoding="utf-8")
    return md, page
