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


def comparison_rows(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, base, fine-tuned, difference) rows; loss differences are base minus tuned."""
    rows = []
    loss = results.get("loss") or {}
    if loss:
        rows.append(
            (
                "held-out loss (lower is better)",
                _fmt(loss.get("base")),
                _fmt(loss.get("tuned")),
                _fmt(loss.get("improvement"), "diff"),
            )
        )
        ppl = loss.get("perplexity") or {}
        rows.append(("perplexity", _fmt(ppl.get("base")), _fmt(ppl.get("tuned")), ""))
    for label, pair in (results.get("checks") or {}).items():
        rows.append(
            (
                f"check `{label}`",
                _fmt(pair["base"], "rate"),
                _fmt(pair["tuned"], "rate"),
                _fmt(pair["improvement"], "diff_rate"),
            )
        )
    rows.extend(_fim_rows(results.get("fim")))
    pair = results.get("pass_rate")
    if pair:
        rows.append(
            (
                "all checks pass",
                _fmt(pair["base"], "rate"),
                _fmt(pair["tuned"], "rate"),
                _fmt(pair["improvement"], "diff_rate"),
            )
        )
    return rows


def _fim_rows(fim: Mapping[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """Fill-in-the-middle on held-out infill rows: exact match and mean similarity."""
    if not fim:
        return []
    rows = []
    for key, name in (("exact", "infill: exact middle"), ("similarity", "infill: similarity")):
        base, tuned = (fim.get(side, {}).get(key) for side in ("base", "tuned"))
        diff = None if base is None or tuned is None else tuned - base
        kind = "rate" if key == "exact" else ""
        rows.append(
            (
                name,
                _fmt(base, kind),
                _fmt(tuned, kind),
                _fmt(diff, "diff_rate" if key == "exact" else "diff"),
            )
        )
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


def render_markdown(results: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    recipe = results["recipe"]
    lines = [
        f"# Evaluation: {recipe['name']}",
        "",
        f"- eval stage key: `{recipe['stage_key'][:16]}`",
        f"- test prompts: {results['data']['test_cases']} "
        f"(generation on {results.get('generated', 0)})",
        f"- gate: {_gate_line(results.get('gate'))}",
    ]
    for note in results.get("notes", []):
        lines.append(f"- note: {note}")
    counts = results["data"].get("counts") or []
    if counts:
        lines += ["", "## Data", "", "| count | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in counts]
    lines += [
        "",
        "## Base vs fine-tuned",
        "",
        "| metric | base | fine-tuned | improvement |",
        "|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in comparison_rows(results)]
    for name, caption in IMAGES.items():
        if name in images:
            lines += ["", f"![{caption}]({images[name].name})"]
    diffs = results.get("differences") or []
    if diffs:
        lines += ["", f"## The {len(diffs)} prompts where the models differ most"]
    for n, row in enumerate(diffs, 1):
        lines += [
            "",
            f"### {n}. `{row['id']}` (checks passed: base {row['base']['passed']}, "
            f"fine-tuned {row['tuned']['passed']})",
            "",
            "Prompt:",
            "",
            _fence(_prompt_text(row["prompt"])),
        ]
        for side, title in (("base", "Base"), ("tuned", "Fine-tuned")):
            failed = [
                f"{k}: {v['reason']}" for k, v in row[side]["checks"].items() if not v["passed"]
            ]
            lines += [
                "",
                f"**{title}** (finish: {row[side]['finish_reason']})"
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


def render_html(results: Mapping[str, Any], images: Mapping[str, Path]) -> str:
    e = html.escape
    recipe = results["recipe"]
    gate = results.get("gate") or {}
    gate_class = "pass" if gate.get("passed", True) else "fail"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation: {e(recipe['name'])}"
        f"</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation: {e(recipe['name'])}</h1><ul>",
        f"<li>eval stage key: <code>{e(recipe['stage_key'][:16])}</code></li>",
        f"<li>test prompts: {results['data']['test_cases']} (generation on "
        f"{results.get('generated', 0)})</li>",
        f"<li>gate: <span class='{gate_class}'>{e(_gate_line(gate))}</span></li>",
    ]
    parts += [f"<li>note: {e(note)}</li>" for note in results.get("notes", [])]
    parts.append("</ul>")
    counts = results["data"].get("counts") or []
    if counts:
        parts.append("<h2>Data</h2><table><tr><th>count</th><th>value</th></tr>")
        parts += [f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in counts]
        parts.append("</table>")
    parts.append(
        "<h2>Base vs fine-tuned</h2><table><tr><th>metric</th><th>base</th>"
        "<th>fine-tuned</th><th>improvement</th></tr>"
    )
    for row in comparison_rows(results):
        parts.append("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
    parts.append("</table>")
    parts += [_img(images[name], caption) for name, caption in IMAGES.items() if name in images]
    diffs = results.get("differences") or []
    if diffs:
        parts.append(f"<h2>The {len(diffs)} prompts where the models differ most</h2>")
    for n, row in enumerate(diffs, 1):
        parts.append(
            f"<h3>{n}. <code>{e(row['id'])}</code></h3><pre>{e(_prompt_text(row['prompt']))}"
            "</pre><table class='side'><tr><th>base</th><th>fine-tuned</th></tr><tr>"
        )
        for side in ("base", "tuned"):
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
