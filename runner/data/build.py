"""The data stage: ``run(recipe, ctx)`` builds train/val/test JSONL from the recipe's sources.

Flow: list work (files) per source -> workers read, extract, filter (stateless part) and
format -> the main process applies stateful filters (dedupe) in input order and spools the
survivors to disk -> per-source caps, balance, grouped split, weights, decontamination on small
in-memory keys -> a second pass over the spool writes the splits. Memory holds the dedupe
indexes and one small key per example, not the examples.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runner.data import split as splitting
from runner.data.example import Example
from runner.data.outcome import Rejection
from runner.data.registries import FILTERS, SOURCES, load_all
from runner.data.report import Report
from runner.data.work import (
    Plan,
    TaskResult,
    Worker,
    filter_rejection,
    init_worker,
    process_task,
    set_worker,
)
from runner.errors import StageError, UserError
from runner.run.context import Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

OUTPUTS = ("train.jsonl", "val.jsonl", "test.jsonl", "rejected.jsonl", "report.json", "report.md")
# Below this many tasks the work runs in this process: starting workers (and loading the
# tokenizer in each) costs more than it saves.
POOL_MIN_TASKS = 16
# Token statistics count every written example up to this many, else a seeded sample this size
# (rendering through the chat template and tokenizing every example cost more than the rest of
# the stage together); the report says which.
TOKEN_SAMPLE = 1000


def make_plan(recipe: Recipe, ctx: StageContext) -> Plan:
    """The picklable description of the per-file work, from the recipe's data sections."""
    from runner.data.sources.replay import replay_sources

    sources = [*recipe.sources, *replay_sources(recipe)]  # continue_from.replay
    names = [s.name or f"{s.type}{i}" for i, s in enumerate(sources)]
    filters = list(recipe.filters)
    signature = None
    if recipe.split.decontaminate:
        # Decontamination compares MinHash signatures: the near_dedupe filter's parameters when
        # the recipe has one (its signatures are reused), else that filter's defaults.
        near = next((f for f in filters if f.type == "near_dedupe"), None)
        near = near or FILTERS.get("near_dedupe").Options(type="near_dedupe")
        signature = (near.num_perm, near.ngram)
    return Plan(
        sources=sources,
        names=names,
        filters=filters,
        prompt=recipe.prompt,
        base=recipe.model.base,
        revision=recipe.model.revision,
        signature=signature,
        log_file=str(ctx.log_file),
    )


def run(
    recipe: Recipe,
    ctx: StageContext,
    *,
    tokens: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> Outcome:
    """Build the dataset under ``ctx.out``; return the stage's outcome (counts, outputs).

    ``tokens`` (a ``TokenCounter``) and ``workers`` exist for tests and benchmarks.
    """
    load_all()
    plan = make_plan(recipe, ctx)
    ctx.out.mkdir(parents=True, exist_ok=True)
    builder = Builder(recipe, plan, ctx, tokens)
    summary = builder.build(workers=workers, progress=progress)
    return Outcome(
        summary=summary,
        outputs={name: name for name in OUTPUTS},
    )


class Builder:
    def __init__(self, recipe: Recipe, plan: Plan, ctx: StageContext, tokens: Any):
        self.recipe = recipe
        self.plan = plan
        self.ctx = ctx
        self.tokens = tokens
        self.on_error = recipe.on_error
        self.split_spec = recipe.split
        self.balance_spec = recipe.balance
        self.seq_len = recipe.train.seq_len
        self.sources = [
            SOURCES.get(s.type)(s, name, ctx.log_file)
            for s, name in zip(plan.sources, plan.names, strict=True)
        ]
        self.filters = [
            FILTERS.get(f.type)(f, None) if FILTERS.get(f.type).stateful else None
            for f in plan.filters
        ]
        self.report = Report(plan, self.sources)
        self.work_dir = ctx.out / ".work"
        self.kept: list[splitting.Kept] = []
        self.worker = Worker(plan, tokens)
        self.template = self.worker.template()
        self.shapes: dict[tuple[str, ...], bool] = {}  # role sequence -> renders
        self.spool_path = self.work_dir / "spool.jsonl"
        self.signature_path = self.work_dir / "signatures.bin"

    # -- phase 1: read, extract, filter ------------------------------------------------------
    def build(self, workers: int | None, progress: bool) -> dict[str, Any]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.rejected = (self.ctx.out / "rejected.jsonl").open("w", encoding="utf-8")
        self.spool = self.spool_path.open("w", encoding="utf-8")
        self.signatures = self.signature_path.open("wb")
        try:
            for result in self._results(workers, progress):
                self.merge(result)
            self.spool.close()
            self.signatures.close()
            self.select()
            self.write_splits()
        finally:
            for handle in (self.rejected, self.spool, self.signatures):
                handle.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)
        return self.report.finish(self.ctx.out, self.seq_len)

    def _tasks(self, listed: list[int]) -> Iterator[tuple[int, str]]:
        """Every source's tasks, listed lazily: walking a large tree takes seconds, and the
        pool reads the first files meanwhile (imap pulls this from its feeder thread)."""
        for index, source in enumerate(self.sources):
            for task in source.tasks():
                listed[0] += 1
                yield index, task

    def _results(self, workers: int | None, progress: bool):
        count = workers if workers is not None else min(2, os.cpu_count() or 1)
        worker = self.worker
        listed = [0]
        tasks = self._tasks(listed)
        head = list(itertools.islice(tasks, POOL_MIN_TASKS))
        small = len(head) < POOL_MIN_TASKS
        with self.report.progress(len(head) if small else None, enabled=progress) as advance:
            if count <= 1 or small:
                self.warm_up()
                for task in itertools.chain(head, tasks):
                    yield worker.process(*task)
                    advance(listed[0])
                return
            import multiprocessing

            if self.plan.signature is not None or any(
                f.type == "near_dedupe" for f in self.plan.filters
            ):
                from runner.data.minhash import preload

                preload()  # once here rather than once in every worker and again here
            # fork: the pool inherits the worker built here (tokenizer, template, imports).
            set_worker(worker)
            fork = os.name == "posix"
            context = multiprocessing.get_context("fork" if fork else "spawn")
            initargs = (None if fork else self.plan,)
            with context.Pool(count, initializer=init_worker, initargs=initargs) as pool:
                self.warm_up()  # a thread: only once the workers are forked
                # imap keeps input order: dedupe decisions do not depend on scheduling.
                for result in pool.imap(process_task, itertools.chain(head, tasks), chunksize=4):
                    yield result
                    advance(listed[0])

    def warm_up(self) -> None:
        """Import what the main process needs later (transformers to render the chat template,
        matplotlib for the histogram: seconds each) in a thread, while workers read files."""
        if self.template is None:
            return
        import threading

        def imports() -> None:
            # A failure here only means the work is done later, where errors are reported.
            with contextlib.suppress(Exception):
                import matplotlib

                matplotlib.use("Agg")
                import matplotlib.pyplot  # noqa: F401

                from runner.prompt.render import render_chat_template

                render_chat_template(self.template.source, [{"role": "user", "content": "x"}])

        threading.Thread(target=imports, name="data-warm-up", daemon=True).start()

    def merge(self, result: TaskResult) -> None:
        self.report.add_task(result)
        for rejection in result.rejections:
            if rejection.action == "skip":
                self.sources[result.source].skip(
                    rejection.reason.removeprefix("skipped: "), rejection.file or result.task
                )
                continue
            self.reject(rejection)
        for candidate in result.candidates:
            example = candidate.example
            if candidate.record is not None:
                error = self.render_error(candidate.record["messages"])
                if error is not None:
                    self.reject(
                        Rejection(
                            "format",
                            "cannot render",
                            error,
                            file=example.metadata.get("source_file"),
                            line=example.metadata.get("line"),
                            example=example,
                        )
                    )
                    continue
            verdict_drop = None
            for index, kind, payload in candidate.trace:
                if kind == "key":
                    verdict = self.filters[index].check(payload, example)
                    if verdict is not None:
                        verdict_drop = (index, verdict)
                        break
                else:
                    if payload.action == "drop":
                        verdict_drop = (index, payload)
                        break
                    self.report.filter_verdict(index, payload)
                    if payload.action == "alter":
                        self.reject(
                            filter_rejection(index, self.plan.filters[index].type, payload, example)
                        )
            if verdict_drop is not None:
                index, verdict = verdict_drop
                self.reject(
                    filter_rejection(index, self.plan.filters[index].type, verdict, example)
                )
                continue
            self.keep(result.source, candidate)

    def render_error(self, messages: list[dict[str, str]]) -> str | None:
        """Why the chat template refuses ``messages``, or None.

        Templates refuse role sequences (no system turn, roles that do not alternate), so the
        first example of each sequence is rendered; after a refusal, every example of that
        sequence is, since the reason may lie in its content.
        """
        if self.template is None:
            return None
        shape = tuple(m["role"] for m in messages)
        if self.shapes.get(shape):
            return None
        try:
            self.template.render(messages)
        except UserError as exc:
            self.shapes[shape] = False
            return str(exc)
        self.shapes.setdefault(shape, True)
        return None

    def reject(self, rejection: Rejection) -> None:
        if rejection.bad_input and self.on_error == "fail":
            raise StageError(
                "data",
                f"{rejection.where()}: {rejection.reason}: {rejection.detail} (on_error: fail)",
            )
        self.report.rejection(rejection)
        self.rejected.write(json.dumps(rejection.to_record(), ensure_ascii=False) + "\n")

    def keep(self, source: int, candidate: Any) -> None:
        record = candidate.record
        meta = record["meta"]
        group_by = self.split_spec.group_by
        group = meta.get(group_by)
        if group_by == "source_file" and self.sources[source].records and group is not None:
            group = f"{group}#{meta.get('row', meta.get('line'))}"  # records are independent
        if group is None:
            self.report.ungrouped += 1
            group = f"id:{record['id']}"
        value = meta.get(self.balance_spec.by) if self.balance_spec else None
        index = len(self.kept)
        kept = splitting.Kept(index, record["id"], source, f"{source}:{group}", value)
        kept.text_hash = self.reused_hash(candidate)
        self.kept.append(kept)
        self.spool.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.plan.signature is not None:
            self.signatures.write(candidate.signature.astype("uint32").tobytes())

    def reused_hash(self, candidate: Any) -> bytes | None:
        """Exact dedupe's key when it is the leak check's hash of the written example: the
        example has no system turn and no filter altered its text after the key was made."""
        from runner.data.filters.dedupe import ExactDedupe

        example = candidate.example
        if example.is_raw or any(m["role"] == "system" for m in example.messages):
            return None
        found = None
        for index, kind, payload in candidate.trace:
            if kind == "key" and isinstance(self.filters[index], ExactDedupe):
                found = payload
            elif kind == "verdict" and payload.action == "alter":
                found = None
        return found

    # -- phase 2: caps, balance, split, weights, decontamination ------------------------------
    def select(self) -> None:
        seed = self.split_spec.seed
        caps = {
            i: s.max_examples for i, s in enumerate(self.plan.sources) if s.max_examples is not None
        }
        self.report.capped = dict(splitting.cap_sources(self.kept, caps, seed))
        if self.balance_spec:
            spec = self.balance_spec
            self.report.balance = splitting.balance(
                self.kept,
                spec.by,
                spec.mode,
                spec.max_per_value,
                spec.seed,
            )
        fractions = self.split_spec.fractions()
        # A source may pin its examples to one split (replayed parent rows: train).
        pinned = {i: s.pinned_split for i, s in enumerate(self.sources) if s.pinned_split}
        free = [item for item in self.kept if item.source not in pinned]
        self.report.split = splitting.assign_splits(free, fractions, seed)
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
                            f"Jaccard >= {threshold} with {match}",
                        )
                        removed += 1
        self.report.decontaminated = removed
        del signatures

    # -- phase 3: write -------------------------------------------------------------------------
    def token_sample(self) -> set[int] | None:
        """Indexes of the examples whose tokens are counted: None means all of them."""
        if self.template is None:
            return set()
        alive = [item.index for item in self.kept if item.dropped is None]
        if len(alive) <= TOKEN_SAMPLE:
            return None
        seed = self.split_spec.seed
        sample = set(random.Random(seed).sample(alive, TOKEN_SAMPLE))
        self.report.token_sample = {"examples": TOKEN_SAMPLE, "of": len(alive), "seed": seed}
        return sample

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of the example as trained: rendered with the chat template, then tokenized."""
        return self.worker.tokens.count(self.template.render(messages))

    def write_splits(self) -> None:
        from runner.data.filters.dedupe import normalised_hash

        outputs = {
            name: (self.ctx.out / f"{name}.jsonl").open("w", encoding="utf-8")
            for name in splitting.SPLITS
        }
        held_out: set[bytes] = set()
        train_hashes: list[bytes] = []
        groups: dict[str, set[str]] = {}
        counted = self.token_sample()
        try:
            with self.spool_path.open(encoding="utf-8") as spool:
                for item, line in zip(self.kept, spool, strict=True):
                    record = json.loads(line)
                    if item.dropped is not None:
                        stage, reason, detail = item.dropped
                        example = Example(
                            record["id"],
                            record["meta"].get("source", ""),
                            record["messages"],
                            metadata=record["meta"],
                        )
                        self.reject(
                            Rejection(
                                stage,
                                reason,
                                detail,
                                file=record["meta"].get("source_file"),
                                line=record["meta"].get("line"),
                                example=example,
                            )
                        )
                        continue
                    text_hash = item.text_hash or normalised_hash(
                        "\n".join(m["content"] for m in record["messages"] if m["role"] != "system")
                    )
                    if counted is None or item.index in counted:
                        try:
                            item.tokens = self.count_tokens(record["messages"])
                        except UserError as exc:
                            item.dropped = ("format", "cannot render", str(exc))
                            self.reject(
                                Rejection(
                                    "format",
                                    "cannot render",
                                    str(exc),
                                    file=record["meta"].get("source_file"),
                                    line=record["meta"].get("line"),
                                )
                            )
                            continue
                    (train_hashes.append if item.split == "train" else held_out.add)(text_hash)
                    groups.setdefault(item.group, set()).add(item.split)
                    outputs[item.split].write(line)  # the spool's line is the record's JSON
                    for copy in range(1, item.copies):
                        row = {**record, "id": f"{record['id']}#r{copy + 1}"}
                        outputs[item.split].write(json.dumps(row, ensure_ascii=False) + "\n")
                    self.report.written(item)
        finally:
            for handle in outputs.values():
                handle.close()
        self.report.leak_check = {
            "groups_in_several_splits": sum(1 for s in groups.values() if len(s) > 1),
            "train_exact_duplicates_of_val_test": sum(1 for h in train_hashes if h in held_out),
            "train_near_duplicates_removed": self.report.decontaminated,
            "decontaminate": self.plan.signature is not None,
        }
        if self.report.split_counts.get("train", 0) == 0:
            self.report.finish(self.ctx.out, self.seq_len)
            raise StageError(
                "data",
                "no training examples are left after filtering; see "
                f"{self.ctx.out / 'report.md'} and rejected.jsonl",
            )
