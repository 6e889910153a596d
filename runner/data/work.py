"""The per-file work of the data stage, run in worker processes: read, extract, filter, format.

A worker gets a ``Plan`` (plain data, picklable) once, builds its sources, extractors, filters,
tokenizer from it, then turns each task ``(source index, file)`` into a
``TaskResult``. Stateless filters are applied here; for stateful ones (dedupe) only the key is
computed here and the decision is left to the main process (see ``filters/base.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from runner.data.example import Example
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


@dataclass
class Candidate:
    """An example that survived the worker's part of the filter chain.

    ``trace`` lists, in filter order, ``(filter index, "key", key)`` for stateful filters and
    ``(filter index, "verdict", Verdict)`` for stateless alterations, notes and a final drop.
    """

    example: Example
    trace: list[tuple[int, str, Any]]
    record: dict[str, Any] | None = None
    signature: Any = None


@dataclass
class TaskResult:
    source: int
    task: str
    candidates: list[Candidate] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    read: int = 0  # examples or documents the source yielded
    extracted: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    bytes: int = 0


class Worker:
    def __init__(self, plan: Plan, tokens: TokenCounter | None = None):
        load_all()
        self.plan = plan
        self.tokens = tokens if tokens is not None else self._tokens(plan)
        self.sources = []
        self.extractors = []
        for options, name in zip(plan.sources, plan.names, strict=True):
            self.sources.append(SOURCES.get(options.type)(options, name, None))
            self.extractors.append(
                [EXTRACTORS.get(e.type)(e, options, self.tokens) for e in extractors_of(options)]
            )
        self.filters = [FILTERS.get(f.type)(f, self.tokens) for f in plan.filters]

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
        result = TaskResult(source_index, task)
        source = self.sources[source_index]
        try:
            result.bytes = os.path.getsize(os.path.join(source.root, task))
        except (OSError, AssertionError):
            result.bytes = 0
        for item in source.read(task):
            if isinstance(item, Rejection):
                result.rejections.append(item)
                continue
            result.read += 1
            if item.is_raw:
                for extractor in self.extractors[source_index]:
                    for produced in extractor.extract(item):
                        if isinstance(produced, Rejection):
                            result.rejections.append(produced)
                            continue
                        result.extracted[extractor.type] = (
                            result.extracted.get(extractor.type, 0) + 1
                        )
                        self.filter(produced, result, before=item)
            else:
                self.filter(item, result, before=None)
        return result

    def filter(self, example: Example, result: TaskResult, before: Example | None) -> None:
        """Run the stateless filters and the key part of stateful ones, in recipe order."""
        original = example.to_record() if len(result.samples) < self.plan.samples_per_task else None
        trace: list[tuple[int, str, Any]] = []
        for index, filt in enumerate(self.filters):
            if filt.stateful:
                trace.append((index, "key", filt.key(example)))
                continue
            verdict = filt(example)
            if verdict is None:
                continue
            if verdict.action == "drop" and not any(kind == "key" for _, kind, _ in trace):
                result.rejections.append(filter_rejection(index, filt.type, verdict, example))
                return
            trace.append((index, "verdict", verdict))
            if verdict.action == "drop":
                break
        candidate = Candidate(example, trace)
        if trace and trace[-1][1] == "verdict" and trace[-1][2].action == "drop":
            result.candidates.append(candidate)  # main decides: a stateful filter may come first
            return
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
        if original is not None:
            raw = before.text[:1500] if before is not None else None
            shown = {"text": raw} if raw is not None else original
            result.samples.append(
                {"before": self.scrub(shown), "after": candidate.record, "id": example.id}
            )

    def scrub(self, value: Any) -> Any:
        """A "before" sample with secrets redacted, when the recipe redacts secrets: the report
        must not carry what the dataset had removed."""
        from runner.data.filters.secrets import SecretsFilter

        redactors = [f for f in self.filters if isinstance(f, SecretsFilter)]
        if not redactors:
            return value
        from collections import Counter

        text = json.dumps(value, ensure_ascii=False)
        for filt in redactors:
            text = filt.redactor.redact(text, "sample.json", Counter())
        return json.loads(text)

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
        parameters, and no filter altered the text after it was computed."""
        from runner.data.filters.dedupe import NearDedupe

        found = None
        for index, kind, payload in candidate.trace:
            filt = self.filters[index]
            if kind == "key" and isinstance(filt, NearDedupe):
                if (filt.num_perm, filt.ngram) == self.plan.signature:
                    found = payload
            elif kind == "verdict" and payload.action == "alter":
                found = None
        return found


def filter_rejection(index: int, kind: str, verdict: Verdict, example: Example) -> Rejection:
    return Rejection(
        f"filter:{kind}",
        verdict.reason,
        verdict.detail,
        file=example.metadata.get("source_file"),
        line=example.metadata.get("line"),
        example=example,
        action=verdict.action,
        extra={"filter_index": index},
    )


# -- process pool plumbing --------------------------------------------------------------------
_WORKER: Worker | None = None


def init_worker(plan: Plan | None) -> None:
    """Pool initializer. Under ``fork`` (``plan`` None) the worker built by the main process is
    inherited, tokenizer loaded; otherwise each process builds its own."""
    global _WORKER
    if plan is not None:
        _WORKER = Worker(plan)


def set_worker(worker: Worker) -> None:
    """Make ``worker`` the one forked pool processes inherit."""
    global _WORKER
    _WORKER = worker


def process_task(task: tuple[int, str]) -> TaskResult:
    assert _WORKER is not None, "init_worker was not called"
    return _WORKER.process(*task)
