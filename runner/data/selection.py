"""Selection: the main process's decisions, first per example in input order, then over the set.

Per example, as results stream in: each filter's answer is settled in recipe order (index
filters decide here, against what was kept before; each decision is counted and written by the
filter's base class), the chat template must accept the example's role sequence, and a kept
example goes to a spool file on disk while a small key (``split.Kept``) stays in memory.

Over the whole set: per-source caps, balance, the grouped split, source weights, and the
decontamination of train against val/test, all on the small keys.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from runner.data import split as splitting
from runner.data.accounting import Ledger
from runner.data.filters.base import Pending
from runner.data.outcome import Rejection, Verdict
from runner.data.report import Report
from runner.data.work import Candidate, Plan, TaskResult
from runner.dataset import is_fim
from runner.errors import UserError


class Selection:
    def __init__(
        self,
        recipe: Any,
        plan: Plan,
        steps: list[Any],
        sources: list[Any],
        template: Any,
        report: Report,
        ledger: Ledger,
        sink: Any,
        work_dir: Path,
    ):
        self.plan = plan
        self.steps = steps
        self.sources = sources
        self.template = template
        self.report = report
        self.ledger = ledger
        self.sink = sink
        self.split_spec = recipe.split
        self.balance_spec = recipe.balance
        self.kept: list[splitting.Kept] = []
        self.spool_path = work_dir / "spool.jsonl"
        self.signature_path = work_dir / "signatures.bin"
        self.spool = self.spool_path.open("w", encoding="utf-8")
        self.signatures = self.signature_path.open("wb")

    def close(self) -> None:
        self.spool.close()
        self.signatures.close()

    def reject(self, rejection: Rejection, entry: int | None = None) -> None:
        """Write a rejected row and charge it to the file it came from."""
        self.sink(rejection)
        if entry is not None:
            self.ledger.reason(entry, rejection)

    # -- per example, in input order ------------------------------------------------------
    def add(self, result: TaskResult) -> None:
        self.report.add_task(result)
        source = self.sources[result.source]
        skips = [r for r in result.rejections if r.action == "skip"]
        if skips and not result.candidates and len(skips) == len(result.rejections):
            for rejection in skips:  # a file skipped by its content (binary, generated)
                source.skip(rejection.reason.removeprefix("skipped: "), result.file)
            return
        entry = self.ledger.read(result.source, result.file, result.language, result.extracted)
        for rejection in result.rejections:
            self.reject(rejection, entry)
        sink = functools.partial(self.reject, entry=entry)
        for candidate in result.candidates:
            kept = self.settle(candidate, sink)
            if kept and candidate.example.is_raw:
                continue  # a document's redactions, settled before its examples
            if kept and self.renders(candidate, sink):
                self.keep(result.source, entry, candidate)

    def settle(self, candidate: Candidate, sink: Any) -> bool:
        """Each filter's answer, in recipe order; False at the first drop."""
        return all(
            self.steps[position].settle(answer, candidate.example, sink)
            for position, answer in candidate.trace
        )

    def renders(self, candidate: Candidate, sink: Any) -> bool:
        """Whether the chat template accepts the example (templates refuse role sequences, some
        refuse content); else its row is written."""
        if self.template is None or candidate.record is None:
            return True
        try:
            self.template.render(candidate.record["messages"])
        except UserError as exc:
            example = candidate.example
            sink(
                Rejection(
                    "format",
                    "cannot render",
                    str(exc),
                    file=example.metadata.get("source_file"),
                    line=example.metadata.get("line"),
                    example=example,
                )
            )
            return False
        return True

    def keep(self, source: int, entry: int, candidate: Candidate) -> None:
        record = candidate.record
        assert record is not None
        meta = record["meta"]
        group_by = self.split_spec.group_by
        group = meta.get(group_by) if group_by != "none" else f"id:{record['id']}"
        if group_by == "source_file" and self.sources[source].records and group is not None:
            group = f"{group}#{meta.get('row', meta.get('line'))}"  # records are independent
        if group is None:
            self.report.ungrouped += 1
            group = f"id:{record['id']}"
        value = meta.get(self.balance_spec.by) if self.balance_spec else None
        kept = splitting.Kept(len(self.kept), record["id"], source, f"{source}:{group}", value)
        kept.task = entry
        kept.text_hash = self.reused_hash(candidate)
        kept.fim = is_fim(record)
        self.kept.append(kept)
        self.spool.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.plan.signature is not None:
            self.signatures.write(candidate.signature.astype("uint32").tobytes())

    def reused_hash(self, candidate: Candidate) -> bytes | None:
        """Exact dedupe's key when it is the leak check's hash of the written example: the
        example has no system turn and no filter altered its text after the key was made.
        (With ``Worker.reused_signature``: 16 of 90 CPU s on the bench corpus.)"""
        from runner.data.filters.dedupe import ExactDedupe

        example = candidate.example
        if example.is_raw or any(m["role"] == "system" for m in example.messages):
            return None
        found = None
        for position, answer in candidate.trace:
            if isinstance(answer, Pending) and isinstance(self.steps[position], ExactDedupe):
                found = answer.key
            elif isinstance(answer, Verdict) and answer.action == "alter":
                found = None
        return found

    # -- over the whole set ---------------------------------------------------------------
    def select(self) -> None:
        """Caps, balance, split, weights and decontamination, recorded on the keys."""
        self.close()
        seed = self.split_spec.seed
        caps = {
            i: s.max_examples for i, s in enumerate(self.plan.sources) if s.max_examples is not None
        }
        self.report.capped = dict(splitting.cap_sources(self.kept, caps, seed))
        if self.balance_spec:
            spec = self.balance_spec
            self.report.balance = splitting.balance(
                self.kept, spec.by, spec.mode, spec.max_per_value, spec.seed
            )
        # A source may pin its examples to one split (replayed parent rows: train).
        pinned = {i: s.pinned_split for i, s in enumerate(self.sources) if s.pinned_split}
        free = [item for item in self.kept if item.source not in pinned]
        self.report.split = splitting.assign_splits(free, self.split_spec.fractions(), seed)
        for item in self.kept:
            if item.source in pinned:
                item.split = pinned[item.source]
        weights = {i: s.weight for i, s in enumerate(self.plan.sources)}
        self.report.weights = splitting.apply_weights(self.kept, weights, seed)
        if self.plan.signature is not None:
            self.decontaminate()

    def decontaminate(self) -> None:
        import numpy as np

        from runner.data.minhash import NearIndex

        num_perm = self.plan.signature[0]
        threshold = self.split_spec.decontaminate_threshold
        if not self.kept:
            return
        signatures = np.memmap(
            self.signature_path, dtype="uint32", mode="r", shape=(len(self.kept), num_perm)
        )
        index = NearIndex(threshold, num_perm)
        for item in self.kept:
            if item.dropped is None and item.split in ("val", "test"):
                index.add(item.id, np.array(signatures[item.index]))
        removed = 0
        if index.size:
            for item in self.kept:
                if item.dropped is None and item.split == "train":
                    match = index.match(np.array(signatures[item.index]))
                    if match is not None:
                        item.dropped = (
                            "decontaminate",
                            "near duplicate of val/test",
                            f"estimated Jaccard {match[1]:.2f} >= {threshold} with {match[0]}",
                        )
                        removed += 1
        self.report.decontaminated = removed
        del signatures
