"""Every file a source lists, and what became of it: the examples it gave, or why it gave none.

A source lists files (a repository's files, a JSONL file, a commit of a history). Each one ends
in exactly one of three columns of the report: skipped before reading (excluded, vendored,
generated, binary, too large...), read with examples written to a split, or read without
examples, under the reason that stopped most of what it produced (no grammar for
``explain_code``, no documented unit, every example a duplicate...). The columns add up to the
files listed, and ``rejected.jsonl`` holds one row naming each file without examples.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from runner.data.outcome import Rejection

NO_REASON = "no example and no reason given"


@dataclass
class FileEntry:
    source: int
    file: str
    language: str | None = None
    examples: int = 0  # written to a split (copies included)
    reasons: Counter[str] = field(default_factory=Counter)
    extracted: dict[str, int] = field(default_factory=dict)


class Ledger:
    """The fate of every listed file, per source (main process)."""

    def __init__(self, sources: list[Any]):
        self.sources = sources
        self.entries: list[FileEntry] = []

    def read(self, source: int, file: str, language: str | None, extracted: dict) -> int:
        """Register a file that was read; returns its id for ``reason`` and ``wrote``."""
        self.entries.append(FileEntry(source, file, language, extracted=dict(extracted)))
        return len(self.entries) - 1

    def reason(self, entry: int, rejection: Rejection) -> None:
        """Something the file produced (or the file itself) was dropped for this reason."""
        if rejection.action in ("drop", "skip"):
            self.entries[entry].reasons[f"{rejection.stage}: {rejection.reason}"] += 1

    def wrote(self, entry: int, copies: int) -> None:
        self.entries[entry].examples += copies

    @staticmethod
    def fate(entry: FileEntry) -> str:
        """Why a file gave no example: its most frequent reason (the first one on a tie)."""
        if not entry.reasons:
            return NO_REASON
        return entry.reasons.most_common(1)[0][0]

    def rows(self) -> list[Rejection]:
        """One ``rejected.jsonl`` row for each read file without examples."""
        rows = []
        for entry in self.entries:
            if entry.examples:
                continue
            source = self.sources[entry.source]
            counts = "; ".join(f"{reason}: {n}" for reason, n in entry.reasons.most_common())
            rows.append(
                Rejection(
                    source.stage,
                    self.fate(entry),
                    counts or "the file produced nothing to train on",
                    file=entry.file,
                    action="no examples",
                )
            )
        return rows

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per source: files listed = with examples + skipped + without examples."""
        summary: dict[str, dict[str, Any]] = {}
        for index, source in enumerate(self.sources):
            entries = [e for e in self.entries if e.source == index]
            skipped = Counter(reason for reason, _ in source.skipped_files)
            without = Counter(self.fate(e) for e in entries if not e.examples)
            with_examples = sum(1 for e in entries if e.examples)
            summary[source.name] = {
                "listed": len(entries) + sum(skipped.values()),
                "with_examples": with_examples,
                "skipped": sum(skipped.values()),
                "without_examples": sum(without.values()),
                "skipped_by_reason": dict(skipped.most_common()),
                "without_examples_by_reason": dict(without.most_common()),
            }
        return summary

    def languages(self) -> dict[str, dict[str, Any]]:
        """Per language of the files read: how many gave examples, and each extractor's yield."""
        table: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            if entry.language is None and not entry.extracted:
                continue  # records (instructions, chats) have no language of their own
            row = table.setdefault(
                entry.language or "unknown",
                {
                    "files": 0,
                    "with_examples": 0,
                    "examples": 0,
                    "extracted": Counter(),
                    "without_examples_by_reason": Counter(),
                },
            )
            row["files"] += 1
            row["examples"] += entry.examples
            row["extracted"].update(entry.extracted)
            if entry.examples:
                row["with_examples"] += 1
            else:
                row["without_examples_by_reason"][self.fate(entry)] += 1
        return {
            name: {
                **row,
                "extracted": dict(row["extracted"]),
                "without_examples_by_reason": dict(row["without_examples_by_reason"].most_common()),
            }
            for name, row in sorted(table.items(), key=lambda kv: -kv[1]["files"])
        }
