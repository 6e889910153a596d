"""The data stage: ``run(recipe, ctx)`` builds train/val/test JSONL from the recipe's sources.

Flow (one module each): ``streaming`` lists work (files) per source and has workers read,
extract, filter and format it (``work``); ``selection`` settles the filters' answers in input
order (dedupe decides here), spools the survivors to disk and then applies per-source caps,
balance, the grouped split, weights and decontamination on small in-memory keys; ``writing``
makes a second pass over the spool to write the splits. Memory holds the dedupe indexes and
one small key per example, not the examples. ``accounting`` follows every listed file to the
examples it gave or the reason it gave none.
"""

from __future__ import annotations

import functools
import shutil
from typing import TYPE_CHECKING, Any

from runner.data import split as splitting
from runner.data import streaming
from runner.data.accounting import Ledger
from runner.data.outcome import Rejection
from runner.data.registries import FILTERS, SOURCES, load_all
from runner.data.report import Report
from runner.data.selection import Selection
from runner.data.work import Plan, Worker
from runner.data.writing import RejectedRows, write_splits
from runner.errors import StageError
from runner.run.context import Failure, Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

OUTPUTS = ("train.jsonl", "val.jsonl", "test.jsonl", "rejected.jsonl", "report.json", "report.md")


def make_plan(recipe: Recipe, ctx: StageContext) -> Plan:
    """The picklable description of the per-file work, from the recipe's data sections."""
    names = [s.name or f"{s.type}{i}" for i, s in enumerate(recipe.sources)]
    filters = list(recipe.filters)
    signature = None
    if recipe.split.decontaminate:
        # Decontamination compares MinHash signatures: the near_dedupe filter's parameters when
        # the recipe has one (its signatures are reused), else that filter's defaults.
        near = next((f for f in filters if f.type == "near_dedupe"), None)
        near = near or FILTERS.get("near_dedupe").Options(type="near_dedupe")
        signature = (near.num_perm, near.ngram)
    return Plan(
        sources=list(recipe.sources),
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
    summary, problems, stop = build(recipe, plan, ctx, tokens, workers, progress)
    return Outcome(
        summary=summary,
        outputs={name: name for name in OUTPUTS},
        notes=problems,
        failure=Failure(stop, exit_code=2, kind="split too small") if stop else None,
    )


def build(
    recipe: Recipe, plan: Plan, ctx: StageContext, tokens: Any, workers: int | None, progress: bool
) -> tuple[dict[str, Any], list[str], str | None]:
    """Stream the tasks through the workers, select, write; return the report's summary, the
    problems of the splits and why the run must stop before training (or None)."""
    worker = Worker(plan, tokens)
    template = worker.template()
    sources = [
        SOURCES.get(s.type)(s, name, ctx.log_file)
        for s, name in zip(plan.sources, plan.names, strict=True)
    ]
    ledger = Ledger(sources)
    report = Report(plan, sources, worker.filters, ledger)
    work_dir = ctx.out / ".work"
    work_dir.mkdir(parents=True, exist_ok=True)
    rejected = RejectedRows(ctx.out / "rejected.jsonl", report, recipe.on_error)
    selection = Selection(
        recipe, plan, worker.filters, sources, template, report, ledger, rejected, work_dir
    )
    try:
        for result in streaming.results(
            sources,
            worker,
            plan,
            workers=workers,
            progress=functools.partial(report.progress, enabled=progress),
        ):
            selection.add(result)
        selection.select()
        write_splits(selection, ctx.out, selection.reject, report, template, worker.tokens)
        for source in sources:
            for reason, file in source.skipped_files:
                rejected(Rejection(source.stage, reason, file=file, action="skip"))
        for row in ledger.rows():
            rejected(row)
    finally:
        selection.close()
        rejected.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    report.split_problems, stop = splitting.split_problems(
        recipe.split,
        report.split,
        dict(report.split_counts),
        evaluates=recipe.eval.enabled,
        max_prompts=recipe.eval.max_prompts,
    )
    summary = report.finish(ctx.out, recipe.train.seq_len)
    if report.split_counts.get("train", 0) == 0:
        raise StageError(
            "data",
            "no training examples are left after filtering; see "
            f"{ctx.out / 'report.md'} and rejected.jsonl",
        )
    return summary, report.split_problems, stop
