"""Counts of everything the data stage did, written as report.json, report.md and a histogram."""

from __future__ import annotations

import contextlib
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from runner.data.filters.base import scrub
from runner.data.outcome import Rejection

SAMPLES_PER_SOURCE = 2
HISTOGRAM = "token_lengths.png"


class Report:
    def __init__(self, plan: Any, sources: list[Any], steps: list[Any], ledger: Any):
        self.plan = plan
        self.sources = sources
        self.steps = steps  # the filters, which count their own decisions
        self.ledger = ledger
        self.total_bytes = 0
        self.per_source: dict[str, Counter[str]] = {s.name: Counter() for s in sources}
        self.extracted: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.bad_input: list[str] = []
        self.bad_input_count = 0
        self.samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.capped: dict[int, int] = {}
        self.balance: dict[str, Any] | None = None
        self.split: dict[str, Any] = {}
        self.weights: dict[int, dict[str, int]] = {}
        self.decontaminated = 0
        self.ungrouped = 0
        self.leak_check: dict[str, Any] = {}
        self.split_problems: list[str] = []
        self.split_counts: Counter[str] = Counter()
        self.split_tokens: dict[str, list[int]] = defaultdict(list)
        self.seq_len: int | None = None
        self.token_sample: dict[str, int] | None = None  # set when statistics are sampled
        self.fim_counts: Counter[str] = Counter()  # infill rows written per split
        self.teacher: dict[str, Any] | None = None  # the teacher client's summary

    @contextlib.contextmanager
    def progress(self, total: int | None, enabled: bool = True):
        """A rich progress bar over files, or nothing when disabled (tests, pipes). It yields
        ``advance(listed)``: one file done, ``listed`` files listed so far (the listing runs
        alongside the work, so the total grows until it is complete)."""
        from rich.console import Console

        from runner.logs import progress_wanted, terminal

        console = Console(file=terminal())
        if not enabled or not progress_wanted() or not console.is_terminal:
            yield lambda listed=None: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress("[bold]data[/]", *columns, console=console, transient=True) as bar:
            task = bar.add_task("files", total=total)

            def advance(listed: int | None = None) -> None:
                bar.update(task, advance=1, total=listed if listed else total)

            yield advance

    # -- counting ---------------------------------------------------------------------------
    def add_task(self, result: Any) -> None:
        name = self.sources[result.source].name
        counts = self.per_source[name]
        counts["files"] += 1
        counts["read"] += result.read
        self.total_bytes += result.bytes
        for kind, n in result.extracted.items():
            self.extracted[kind] += n
        for sample in result.samples:
            if len(self.samples[name]) < SAMPLES_PER_SOURCE:
                sample = dict(sample)
                filename = sample.pop("file")
                sample["before"] = scrub(sample["before"], filename, self.steps)
                self.samples[name].append(sample)

    def rejection(self, rejection: Rejection) -> None:
        if rejection.action == "alter":
            return  # counted by the filter that altered it
        self.rejected[(rejection.stage, rejection.reason)] += 1
        if rejection.stage.startswith("source:"):
            self.per_source[rejection.stage.removeprefix("source:")]["rejected"] += 1
        if rejection.bad_input:
            self.bad_input_count += 1
            if len(self.bad_input) < 20:
                self.bad_input.append(
                    f"{rejection.where()}: {rejection.reason}: {rejection.detail}"
                )

    def written(self, item: Any) -> None:
        self.split_counts[item.split] += item.copies
        if item.tokens is not None:
            self.split_tokens[item.split].extend([item.tokens] * item.copies)
        self.per_source[self.sources[item.source].name][f"in {item.split}"] += item.copies

    # -- output -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        files = self.ledger.summary()
        return {
            "input_bytes": self.total_bytes,
            "sources": {
                s.name: {
                    "type": s.options.type,
                    **dict(self.per_source[s.name]),
                    "files_skipped": s.skipped,
                    "skipped_samples": s.skip_samples,
                    "listing": getattr(s, "listing", None),
                }
                for s in self.sources
            },
            "files": files,
            "languages": self.ledger.languages(),
            "extractors": dict(self.extracted),
            "filters": [step.stats() for step in self.steps],
            "rejected": {
                f"{stage}: {reason}": n
                for (stage, reason), n in sorted(self.rejected.items(), key=lambda x: -x[1])
            },
            "bad_input": {"count": self.bad_input_count, "first": self.bad_input},
            "source_caps": {self.sources[i].name: n for i, n in self.capped.items()},
            "balance": self.balance,
            "split": {
                **self.split,
                "written": dict(self.split_counts),
                "fim_written": dict(self.fim_counts),
                "ungrouped_examples": self.ungrouped,
                "problems": self.split_problems,
            },
            "weights": {self.sources[i].name: v for i, v in self.weights.items()},
            "leak_check": self.leak_check,
            "tokens": self.token_stats(),
            "samples": dict(self.samples),
            "teacher": self.teacher,
        }

    def token_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"counted_with": "chat template" if self.plan.base else "none"}
        stats["examples_counted"] = (
            f"seeded sample of {self.token_sample['examples']} of {self.token_sample['of']} "
            f"examples (seed {self.token_sample['seed']})"
            if self.token_sample
            else "all"
        )
        for name, values in self.split_tokens.items():
            if not values:
                continue
            ordered = sorted(values)
            stats[name] = {
                "count": len(values),
                "min": ordered[0],
                "max": ordered[-1],
                "mean": round(statistics.fmean(values), 1),
                "p50": ordered[len(ordered) // 2],
                "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
            }
            if self.seq_len:
                stats[name]["over_seq_len"] = sum(1 for v in values if v > self.seq_len)
        if self.seq_len:
            stats["seq_len"] = self.seq_len
        return stats

    def finish(self, out: Path, seq_len: int | None) -> dict[str, Any]:
        self.seq_len = seq_len
        report = self.to_dict()
        length_drops = sum(
            n
            for (stage, reason), n in self.rejected.items()
            if "tokens" in reason or "chars" in reason or "max_unit_tokens" in reason
        )
        produced = sum(self.split_counts.values()) + sum(self.rejected.values())
        report["dropped_for_length_share"] = round(length_drops / produced, 4) if produced else 0.0
        if any(self.split_tokens.values()):
            histogram(self.split_tokens, out / HISTOGRAM, self.seq_len)
            report["histogram"] = HISTOGRAM
        (out / "report.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        (out / "report.md").write_text(markdown(report), encoding="utf-8")
        return {
            "counts": dict(self.split_counts),
            "rejected": sum(self.rejected.values()),
            "bad_input": self.bad_input_count,
        }


def histogram(tokens: dict[str, list[int]], path: Path, seq_len: int | None) -> None:
    """Token lengths per split as a PNG (matplotlib, imported only here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for name in ("train", "val", "test"):
        if tokens.get(name):
            axis.hist(tokens[name], bins=40, alpha=0.6, label=f"{name} ({len(tokens[name])})")
    if seq_len:
        axis.axvline(seq_len, color="red", linestyle="--", label=f"seq_len {seq_len}")
    axis.set_xlabel("tokens per example (chat template applied)")
    axis.set_ylabel("examples")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def teacher_lines(teacher: dict[str, Any] | None) -> list[str]:
    """The teacher's part of the report: what was asked, answered from the cache, and why the
    rest has no answer."""
    if not teacher:
        return []
    outcomes = teacher["outcomes"]
    budget = teacher["max_requests"]
    return [
        "",
        f"## Teacher `{teacher['model']}` ({teacher['base_url']})",
        "",
        f"- requests sent: {teacher['requests_sent']}"
        + (f" of a budget of {budget}" if budget is not None else ""),
        f"- answers from the cache ({teacher['cache']}): {outcomes.get('cached', 0)}",
        *(f"- {k}: {v}" for k, v in outcomes.items() if k != "cached"),
    ]


def markdown(report: dict[str, Any]) -> str:
    """The human report."""
    lines = ["# Data report", ""]
    split = report["split"]["written"]
    lines += [
        f"Written: train {split.get('train', 0)}, val {split.get('val', 0)}, "
        f"test {split.get('test', 0)}. Input: {report['input_bytes'] / 1e6:.2f} MB.",
        "",
    ]
    fim = report["split"].get("fim_written") or {}
    if fim:
        lines += [
            f"Of these, fill-in-the-middle rows (`<split>.fim.jsonl`): train {fim.get('train', 0)}, "
            f"val {fim.get('val', 0)}, test {fim.get('test', 0)}.",
            "",
        ]
    lines += [
        "## Sources",
        "",
        "Every file a source lists is counted once: listed = with examples + skipped + "
        "without examples.",
        "",
        "| source | type | listed | with examples | skipped | without examples | read | "
        "rejected | train | val | test |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["sources"].items():
        f = report["files"][name]
        lines.append(
            f"| {name} | {s['type']} | {f['listed']} | {f['with_examples']} | {f['skipped']} | "
            f"{f['without_examples']} | {s.get('read', 0)} | {s.get('rejected', 0)} | "
            f"{s.get('in train', 0)} | {s.get('in val', 0)} | {s.get('in test', 0)} |"
        )
    for name, f in report["files"].items():
        if f["skipped"] or f["without_examples"]:
            lines += [
                "",
                f"Files of `{name}` that gave no example (rejected.jsonl names each):",
                "",
            ]
            lines += [f"- skipped, {k}: {v}" for k, v in f["skipped_by_reason"].items()]
            lines += [f"- read, {k}: {v}" for k, v in f["without_examples_by_reason"].items()]
    if report["languages"]:
        lines += [
            "",
            "## Yield per language",
            "",
            "| language | files read | with examples | examples written | extracted | "
            "why the others gave none |",
            "|---|---|---|---|---|---|",
        ]
        for language, row in report["languages"].items():
            extracted = ", ".join(f"{k} {v}" for k, v in row["extracted"].items()) or "-"
            why = "; ".join(f"{k}: {v}" for k, v in row["without_examples_by_reason"].items())
            lines.append(
                f"| {language} | {row['files']} | {row['with_examples']} | {row['examples']} | "
                f"{extracted} | {why or '-'} |"
            )
    for s in report["sources"].values():
        listing = s.get("listing")
        if isinstance(listing, dict) and listing.get("replay"):
            lines += [
                "",
                f"Replay (continue_from.replay): {listing['replayed']} of the parent's "
                f"{listing['parent_examples']} training examples ({listing['fraction']:.0%}, "
                f"seed {listing['seed']}) from {listing['parent']}, all in train.",
            ]
    lines += ["", "## Extractors", ""]
    lines += [f"- {k}: {v} examples" for k, v in report["extractors"].items()] or ["- none"]
    lines += teacher_lines(report.get("teacher"))
    lines += [
        "",
        "## Filters",
        "",
        "| # | filter | dropped | altered | kept, noted |",
        "|---|---|---|---|---|",
    ]
    for f in report["filters"]:
        dropped = "; ".join(f"{k}: {v}" for k, v in f["dropped"].items()) or "-"
        altered = "; ".join(f"{k}: {v}" for k, v in f["altered"].items()) or "-"
        notes = "; ".join(f"{k}: {v}" for k, v in f["notes"].items()) or "-"
        lines.append(f"| {f['index']} | {f['type']} | {dropped} | {altered} | {notes} |")
    lines += ["", "## Every drop and alteration by stage and reason", ""]
    lines += [f"- {k}: {v}" for k, v in report["rejected"].items()] or ["- none"]
    if report["bad_input"]["count"]:
        lines += ["", f"## Bad input ({report['bad_input']['count']})", ""]
        lines += [f"- `{line}`" for line in report["bad_input"]["first"]]
    if report["balance"]:
        b = report["balance"]
        lines += ["", f"## Balance by `{b['by']}` ({b['mode']}, target {b['target']})", ""]
        lines += [f"- {k}: {b['before'][k]} -> {b['after'][k]}" for k in b["before"]]
    leak = report["leak_check"]
    if report["split"]["problems"]:
        lines += ["", "## Split problems", ""]
        lines += [f"- {problem}" for problem in report["split"]["problems"]]
    lines += [
        "",
        "## Split and leak check",
        "",
        f"- groups: {report['split'].get('groups')}",
        f"- groups found in more than one split: {leak.get('groups_in_several_splits')}",
        f"- train examples identical to a val/test example: "
        f"{leak.get('train_exact_duplicates_of_val_test')}",
        f"- train examples removed as near duplicates of val/test: "
        f"{leak.get('train_near_duplicates_removed')} "
        f"(decontaminate: {leak.get('decontaminate')})",
    ]
    tokens = report["tokens"]
    lines += ["", "## Token lengths", ""]
    if tokens.get("examples_counted", "all") != "all":
        lines += [f"Counted on a {tokens['examples_counted']}, not on every example.", ""]
    for name in ("train", "val", "test"):
        if name in tokens:
            t = tokens[name]
            over = f", over seq_len: {t['over_seq_len']}" if "over_seq_len" in t else ""
            lines.append(
                f"- {name}: min {t['min']}, p50 {t['p50']}, p95 {t['p95']}, max {t['max']}{over}"
            )
    lines.append(f"- share dropped for length: {report['dropped_for_length_share']:.2%}")
    if report.get("histogram"):
        lines += ["", f"![token lengths]({report['histogram']})"]
    lines += ["", "## Before / after", ""]
    for name, samples in report["samples"].items():
        for sample in samples:
            before = json.dumps(sample["before"], ensure_ascii=False, indent=1)[:1200]
            after = json.dumps(sample["after"], ensure_ascii=False, indent=1)[:1200]
            lines += [
                f"### {name}: {sample['id']}",
                "",
                "Before:",
                "",
                "```json",
                before,
                "```",
                "",
                "After:",
                "",
                "```json",
                after,
                "```",
                "",
            ]
    return "\n".join(lines) + "\n"
