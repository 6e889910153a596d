"""The per-file work of the data stage, run in worker processes: read, extract, filter, format.

A worker gets a ``Plan`` (plain data, picklable) once, builds its sources, extractors, filters,
tokenizer from it, then turns each task ``(source index, file)`` into a ``TaskResult``. A raw
document (a file, a docs section) first goes through the recipe's redaction steps, then its
extractors; each example then asks the filters in recipe order. Filters answer here; index
filters (dedupe) only compute their key here and the main process decides (``selection.py``,
``filters/base.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.data.example import Example
from runner.data.filters.base import Pending, Redaction
from runner.data.outcome import Rejection, Verdict
from runner.data.registries import EXTRACTORS, FILTERS, SOURCES, load_all
from runner.data.tokenizer import TokenCounter
from runner.errors import UserError

# Extractors used when a source names none: raw files and doc sections must become chats.
DEFAULT_EXTRACT = {"repo": "file_completion", "docs": "docs_qa"}


def extractors_of(options: Any) -> list[Any]:
    """A source's ``extract:`` entries (validated options), or its default extractor's."""
    extract = getattr(options, "extract", None)
    if extract:
        return list(extract)
    default = DEFAULT_EXTRACT.get(options.type)
    return [EXTRACTORS.get(default).Options(type=default)] if default else []


@dataclass
class Plan:
    """What every worker needs, as validated recipe options (picklable)."""

    sources: list[Any]  # each source's options
    names: list[str]  # each source's name (its `name:`, else type and index)
    filters: list[Any]
    prompt: Any  # the `prompt:` section
    base: str | None
    revision: str | None = None
    signature: tuple[int, int] | None = None  # (num_perm, ngram) for decontamination
    log_file: str | None = None
    samples_per_task: int = 1
    seq_len: int | None = None  # `train.seq_len`: infill rows must fit it whole
    teacher: Any = None  # the `teacher:` section, for `type: teacher` extractors


@dataclass
class Candidate:
    """An example on its way through the filter chain.

    ``trace`` lists, in recipe order, ``(filter position, answer)`` for each filter that said
    more than "keep unchanged": a ``Verdict`` (alteration, note, drop) or an index filter's
    ``Pending`` key. It ends with the drop when a filter dropped the example here; the main
    process settles the answers in order (an index filter before that drop may have dropped it
    first), counting each decision and writing its row.
    """

    example: Example
    trace: list[tuple[int, Verdict | Pending]]
    record: dict[str, Any] | None = None
    signature: Any = None

    @property
    def dropped(self) -> bool:
        return bool(self.trace) and getattr(self.trace[-1][1], "action", None) == "drop"


@dataclass
class TaskResult:
    source: int
    task: str
    file: str = ""  # how reports and rejected rows name the task (relative path, commit)
    language: str | None = None  # the raw document's language, when the source gives one
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    read: int = 0  # examples or documents the source yielded
    extracted: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)  # "before" not yet scrubbed
    bytes: int = 0


# A report sample shows at most this much of the raw document, cut at a line end.
SAMPLE_CHARS = 1500


class Worker:
    def __init__(self, plan: Plan, tokens: TokenCounter | None = None):
        load_all()
        self.plan = plan
        self.tokens = tokens if tokens is not None else self._tokens(plan)
        log_file = Path(plan.log_file) if plan.log_file else None
        self.sources = []
        self.extractors = []
        for options, name in zip(plan.sources, plan.names, strict=True):
            self.sources.append(SOURCES.get(options.type)(options, name, log_file))
            self.extractors.append(
                [EXTRACTORS.get(e.type)(e, options, self.tokens) for e in extractors_of(options)]
            )
        self.shared: dict[str, Any] = {}  # what extractors share: the teacher's client
        for extractor in (e for extractors in self.extractors for e in extractors):
            extractor.attach(plan, self.shared)
        self.filters = [FILTERS.get(f.type)(f, self.tokens) for f in plan.filters]
        for position, step in enumerate(self.filters):
            step.position = position
        self.redactions = [f for f in self.filters if isinstance(f, Redaction)]

    @staticmethod
    def _tokens(plan: Plan) -> TokenCounter | None:
        if plan.base is None:
            return None
        return TokenCounter.for_base(plan.base, plan.revision)

    def template(self) -> Any:
        """The recipe's chat template (None without a base tokenizer)."""
        if self.tokens is None:
            return None
        from runner.prompt.template import load_template

        tokenizer_dir = None
        if self.plan.base is not None:
            from runner.models import resolve_base

            tokenizer_dir = resolve_base(self.plan.base, self.plan.revision)
        return load_template(
            self.plan.prompt.template,
            tokenizer_dir,
            system_fallback=self.plan.prompt.system_fallback,
        )

    def process(self, source_index: int, task: str) -> TaskResult:
        source = self.sources[source_index]
        extractors = self.extractors[source_index]
        # An extractor that waits on a server (the teacher) gets all of a task's documents
        # first, to ask for them at once; the others stream document by document.
        gather = any(e.prefetches for e in extractors)
        result = TaskResult(source_index, task, file=source.shown(task))
        result.bytes = source.task_bytes(task)
        documents: list[Example] = []
        for item in source.read(task):
            if isinstance(item, Rejection):
                result.rejections.append(item)
                result.language = result.language or item.extra.get("language")
                continue
            result.read += 1
            if item.is_raw:
                result.language = result.language or item.metadata.get("language")
                if not self.redact_document(item, result):
                    continue
                if gather:
                    documents.append(item)
                else:
                    self.extract(extractors, item, result)
            else:
                self.filter(item, result, before=None)
        if documents:
            for extractor in extractors:
                extractor.prefetch(documents)
            for document in documents:
                self.extract(extractors, document, result)
        return result

    def extract(self, extractors: list[Any], document: Example, result: TaskResult) -> None:
        for extractor in extractors:
            for produced in extractor.extract(document):
                if isinstance(produced, Rejection):
                    result.rejections.append(produced)
                    continue
                result.extracted[extractor.type] = result.extracted.get(extractor.type, 0) + 1
                self.filter(produced, result, before=document)

    def redact_document(self, document: Example, result: TaskResult) -> bool:
        """Apply the recipe's redaction steps to a raw document before extractors cut it:
        a private key split between a prompt and its answer is no longer a key either half
        would be recognised by. False when a step drops the document (``action: drop``)."""
        trace: list[tuple[int, Verdict | Pending]] = []
        for step in self.redactions:
            answer = step.apply(document)
            if answer is not None:
                trace.append((step.position, answer))
        if trace:  # settled in the main process, never kept: its text need not travel there
            named = Example(document.id, document.source, metadata=document.metadata)
            result.candidates.append(Candidate(named, trace))
        return not any(getattr(answer, "action", None) == "drop" for _, answer in trace)

    def filter(self, example: Example, result: TaskResult, before: Example | None) -> None:
        """Ask each filter in recipe order, until one drops the example. Redaction steps
        already ran on the document an extracted example (``before``) was cut from, unless a
        teacher wrote its answer: that text was never in the document."""
        original = None
        if before is None and len(result.samples) < self.plan.samples_per_task:
            original = copy.deepcopy(example.to_record())  # filters alter examples in place
        trace: list[tuple[int, Verdict | Pending]] = []
        redacted = before is not None and "teacher" not in example.metadata
        for step in self.filters:
            if redacted and isinstance(step, Redaction):
                continue
            answer = step.apply(example)
            if answer is None:
                continue
            trace.append((step.position, answer))
            if isinstance(answer, Verdict) and answer.action == "drop":
                break
        candidate = Candidate(example, trace)
        if not candidate.dropped:
            try:
                self.finish(candidate)
            except UserError as exc:
                result.rejections.append(
                    Rejection(
                        "format",
                        "cannot render",
                        str(exc),
                        file=example.metadata.get("source_file"),
                        line=example.metadata.get("line"),
                        example=example,
                    )
                )
                return
        result.candidates.append(candidate)
        if len(result.samples) < self.plan.samples_per_task and not candidate.dropped:
            shown = {"text": head(before.text)} if before is not None else original
            filename = example.metadata.get("path") or "example.txt"
            # Not scrubbed here: the report keeps two samples per source of thousands of files,
            # and scrubs those (``Report.add_task``); scrubbing every file's sample was about 2 %
            # of the workers' time on the bench corpus.
            result.samples.append(
                {"before": shown, "after": candidate.record, "id": example.id, "file": filename}
            )

    def finish(self, candidate: Candidate) -> None:
        """The canonical record (system prompt rendered) and its MinHash.

        The chat template is not rendered here: the main process renders the first example of
        each role sequence to check the template accepts it, and a seeded sample for the token
        statistics (``build.Builder``); rendering goes through transformers, whose import alone
        costs each worker seconds.
        """
        from runner.prompt.system import render_system

        example = candidate.example
        messages = example.messages
        if messages[0]["role"] != "system" and example.metadata.get("system_prompt") != "none":
            meta = {"source": example.source, **example.metadata}
            system = render_system(self.plan.prompt.system, meta)
            if system:
                messages = [{"role": "system", "content": system}, *messages]
        record = {
            "id": example.id,
            "messages": messages,
            "meta": {"source": example.source, **example.metadata},
        }
        candidate.record = record
        if self.plan.signature is not None:
            candidate.signature = self.reused_signature(candidate)
            if candidate.signature is None:
                from runner.data.minhash import signature

                num_perm, ngram = self.plan.signature
                candidate.signature = signature(example.content("all"), num_perm, ngram)

    def reused_signature(self, candidate: Candidate) -> Any:
        """The near-dedupe key when it is the signature decontamination needs: same MinHash
        parameters, and no filter altered the text after it was computed. (With
        ``Selection.reused_hash``: 16 of 90 CPU s on the bench corpus, about 20 % of the
        stage's time on two cores.)"""
        from runner.data.filters.dedupe import NearDedupe

        found = None
        for position, answer in candidate.trace:
            step = self.filters[position]
            if isinstance(answer, Pending) and isinstance(step, NearDedupe):
                if (step.num_perm, step.ngram) == self.plan.signature:
                    found = answer.key
            elif isinstance(answer, Verdict) and answer.action == "alter":
                found = None
        return found


def head(text: str, limit: int = SAMPLE_CHARS) -> str:
    """The start of ``text``, at most ``limit`` characters, cut at a line end (a redaction
    step then sees whole lines: a key cut in the middle of a line might no longer be found)."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut + 1] if cut > 0 else text[:limit]
