"""`teacher`: a teacher model (the recipe's `teacher:` endpoint) writes the answers.

Without a model, an "explain this code" example can only answer with the code's own doc
comment, and many units have none. Here each unit (a function, a method, a type without
members) or documentation section becomes a question to the teacher, written from a Jinja
prompt the recipe can override (``prompt:``, ``system:``):

- ``explain``: what the unit does, in prose; ``review``: a short code review;
- ``document``: the documentation comment of the undocumented unit;
- ``qa``: ``count`` question/answer pairs grounded in a section (or a chunk of a file);
- ``variants``: ``count`` requests a developer might make that the unit answers.

The training example's user turn is the recipe's ``instruction`` (with the code, for the code
tasks); the assistant turn is the teacher's answer, which then passes the recipe's filters like
any other (length, syntax of its code blocks, secrets: redaction runs on it too, since its text
was never in the document). Every example records ``meta.teacher`` (the model) and
``meta.teacher_task``. Failures are rejected rows with the teacher's reason
(``runner.data.teacher_endpoint``). The default prompts are filled into the recipe when it is
loaded, so they are part of the data stage's key and of ``recipe explain``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator, model_validator

from runner.data.example import Example
from runner.data.extractors.base import Extractor, ExtractorOptions, fenced
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS
from runner.data.tokenizer import chunk_text
from runner.data.units import Unit, parse_units, walk_units
from runner.errors import UserError
from runner.grammars import has_parser

Task = Literal["explain", "document", "review", "qa", "variants"]
CODE_TASKS = ("explain", "document", "review", "variants")

_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)

SYSTEM = {
    "explain": "You are a senior {{ language }} engineer explaining code to a colleague who is "
    "new to this code base. You are precise and brief.",
    "document": "You are a senior {{ language }} engineer who writes documentation comments in "
    "the style of the project.",
    "review": "You are a senior {{ language }} engineer reviewing code. You are specific, "
    "brief and kind.",
    "qa": "You write questions and answers from documentation, using only what it says.",
    "variants": "You write the requests developers make to a coding assistant.",
}
PROMPTS = {
    "explain": (
        "Explain what the following {{ kind }} `{{ name }}` from `{{ path }}` does: its purpose, "
        "its inputs and outputs, and anything surprising. Answer in one to three short "
        "paragraphs of plain prose, without repeating the code.\n\n{{ code_block }}\n"
    ),
    "document": (
        "Write the documentation comment for the following {{ kind }} `{{ name }}` from "
        "`{{ path }}`, in the style {{ language }} projects use (a docstring or a doc comment). "
        "Answer with the documentation only, in a code block.\n\n{{ code_block }}\n"
    ),
    "review": (
        "Review the following {{ kind }} `{{ name }}` from `{{ path }}`: bugs, unclear names, "
        "missing error handling, simpler ways. Be specific and brief; if it is fine, say so and "
        "why.\n\n{{ code_block }}\n"
    ),
    "qa": (
        'Here is the section "{{ title }}" of `{{ path }}`:\n\n{{ text }}\n\n'
        "Write {{ count }} questions a user of this project might ask that this section "
        "answers, each followed by its answer, using only the section. Write each pair "
        "exactly as:\nQ: <question>\nA: <answer>\n"
    ),
    "variants": (
        "Here is a {{ language }} {{ kind }} from `{{ path }}`:\n\n{{ code_block }}\n\n"
        "Write {{ count }} different requests a developer might make to a coding assistant "
        "for which this code is the answer. One request per line, without numbering, without "
        "code.\n"
    ),
}
INSTRUCTIONS = {
    "explain": "Explain what the following {language} code from `{path}` does.",
    "document": "Write documentation for the following {language} code from `{path}`.",
    "review": "Review the following {language} code from `{path}`.",
    "qa": "{question}",
    "variants": "{request}",
}
QA_PAIR = re.compile(
    r"^\s*\**Q(?:uestion)?\s*\d*\s*[:.)]\**\s*(.+?)\s*^\s*\**A(?:nswer)?\s*\d*\s*[:.)]\**\s*(.+?)"
    r"(?=^\s*\**Q(?:uestion)?\s*\d*\s*[:.)]|\Z)",
    re.MULTILINE | re.DOTALL,
)
LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


@EXTRACTORS.register
class Teacher(Extractor):
    """User: the instruction (and the code). Assistant: the teacher model's answer."""

    prefetches = True

    class Options(ExtractorOptions):
        """Answers written by the recipe's `teacher:` model (explain, document, review, qa,
        variants), cached on disk; failures are counted and kept with their reason."""

        type: Literal["teacher"]
        task: Task = "explain"
        """What the teacher writes: `explain`, `document` or `review` a unit, `qa` pairs from a
        docs section, `variants` (requests the unit answers)."""
        instruction: str = ""
        """The training example's user turn (`{language}`, `{name}`, `{path}`; `{question}` for
        qa, `{request}` for variants); defaults to the task's."""
        prompt: str = ""
        """The Jinja prompt sent to the teacher (variables: `task`, `language`, `kind`, `name`,
        `path`, `code`, `code_block`, `doc`, `title`, `heading_path`, `text`, `count`);
        defaults to the task's."""
        system: str = ""
        """The teacher's system message (Jinja, same variables); defaults to the task's."""
        count: int = Field(3, ge=1, le=20)
        """Pairs per section (`qa`), requests per unit (`variants`)."""

        @model_validator(mode="before")
        @classmethod
        def _task_defaults(cls, data: Any) -> Any:
            """Fill in the task's prompt, system message and instruction, so the resolved
            recipe (and the data stage's key) holds the exact text sent."""
            if isinstance(data, dict):
                task = data.get("task", "explain")
                if task in PROMPTS:
                    data = dict(data)
                    for key, table in (
                        ("prompt", PROMPTS),
                        ("system", SYSTEM),
                        ("instruction", INSTRUCTIONS),
                    ):
                        if not data.get(key):
                            data[key] = table[task]
            return data

        @field_validator("prompt", "system")
        @classmethod
        def _jinja(cls, text: str) -> str:
            try:
                _ENV.parse(text)
            except TemplateError as exc:
                raise ValueError(f"not a valid Jinja template: {exc}") from None
            return text

    def __init__(self, options: Any, source_options: Any, tokens: Any):
        super().__init__(options, source_options, tokens)
        self.task = options.task
        self.prompt = _ENV.from_string(options.prompt)
        self.system = _ENV.from_string(options.system)
        self.client: Any = None
        self.model = ""
        self.pending: dict[str, list[Question | Rejection]] = {}

    def attach(self, plan: Any, shared: dict[str, Any]) -> None:
        from runner.data.teacher_endpoint import TeacherClient

        section = getattr(plan, "teacher", None)
        if section is None:
            raise UserError("a `type: teacher` extractor needs a `teacher:` section in the recipe")
        if "teacher" not in shared:
            log_file = Path(plan.log_file) if plan.log_file else None
            shared["teacher"] = TeacherClient(section, log_file)
        self.client = shared["teacher"]
        self.model = section.model

    # -- asking ahead -----------------------------------------------------------------------
    def prefetch(self, docs: list[Example]) -> None:
        for doc in docs:
            if doc.id not in self.pending:
                self.pending[doc.id] = list(self.questions(doc))

    def questions(self, doc: Example) -> Iterator[Question | Rejection]:
        """One question per unit (or section), sent at once; rejections for what cannot be
        asked."""
        for subject in self.subjects(doc):
            if isinstance(subject, Rejection):
                yield subject
                continue
            try:
                values = {"task": self.task, "count": self.options.count, **subject.values}
                messages = [
                    {"role": "system", "content": self.system.render(values).strip()},
                    {"role": "user", "content": self.prompt.render(values)},
                ]
            except (UndefinedError, TemplateError) as exc:
                raise UserError(
                    f"the teacher prompt of task {self.task} cannot be rendered: {exc}"
                ) from None
            assert self.client is not None, "attach() was not called"
            yield Question(subject, self.client.submit(messages))

    def subjects(self, doc: Example) -> Iterator[Subject | Rejection]:
        meta = doc.metadata
        path = meta.get("path") or meta.get("source_file") or ""
        language = meta.get("language") or "text"
        if self.task == "qa":
            title = meta.get("title") or path
            assert self.tokens is not None
            chunks = chunk_text(doc.text, self.max_tokens, self.tokens) if doc.text.strip() else []
            if not chunks:
                yield self.reject(doc, "empty section", f"'{title}' has no text", meta.get("line"))
            for number, chunk in enumerate(chunks, start=1):
                values = {
                    "language": language,
                    "path": path,
                    "title": title,
                    "heading_path": meta.get("heading_path", title),
                    "text": chunk,
                    "name": title,
                    "kind": "section",
                    "code": chunk,
                    "code_block": chunk,
                    "doc": "",
                }
                yield Subject(None, number, meta.get("line"), values)
            return
        if not has_parser(language):
            yield self.reject(doc, "no grammar", f"{language}: no tree-sitter grammar")
            return
        units = [u for u in walk_units(parse_units(doc.text, language)[0]) if not u.children]
        if not units:
            yield self.reject(
                doc, "no unit", f"no function, method or type in this {language} file"
            )
        for unit in units:
            code = unit.code_without_doc if self.task == "document" else unit.documented_code
            if self.task == "document" and unit.doc:
                yield self.reject(
                    doc,
                    "already documented",
                    f"{unit.kind} '{unit.name}' has documentation of its own",
                    unit.start_line,
                )
                continue
            if not self.fits(code):
                yield self.reject(
                    doc,
                    "unit over max_unit_tokens",
                    f"{unit.kind} '{unit.name}' is over {self.max_tokens} tokens",
                    unit.start_line,
                )
                continue
            values = {
                "language": language,
                "path": path,
                "kind": unit.kind,
                "name": unit.name,
                "code": code,
                "code_block": fenced(code, language),
                "doc": unit.doc or "",
                "title": unit.name,
                "heading_path": unit.name,
                "text": code,
            }
            yield Subject(unit, 0, unit.start_line, values)

    # -- answers -> examples ------------------------------------------------------------------
    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        if doc.id not in self.pending:
            self.prefetch([doc])
        for item in self.pending.pop(doc.id):
            if isinstance(item, Rejection):
                yield item
                continue
            answer = item.future.result()
            subject = item.subject
            if not answer.ok:
                yield self.teacher_rejection(doc, subject, answer.reason, answer.detail, answer)
                continue
            yield from self.examples(doc, subject, answer)

    def examples(
        self, doc: Example, subject: Subject, answer: Any
    ) -> Iterator[Example | Rejection]:
        values = subject.values
        meta: dict[str, Any] = {
            "teacher": self.model,
            "teacher_task": self.task,
            "teacher_answer": answer.key,
            "line": subject.line,
        }
        if subject.unit is not None:
            meta.update(unit=subject.unit.name, kind=subject.unit.kind)
        filled = {k: values[k] for k in ("language", "name", "path")}
        if self.task in ("explain", "review", "document"):
            user = f"{self.fill(**filled)}\n\n{values['code_block']}"
            if self.task != "document":
                meta["response_format"] = "text"
            yield self.make(doc, user, answer.text, self.task, values["name"], subject.line, **meta)
            return
        if self.task == "qa":
            pairs = [(q.strip(), a.strip()) for q, a in QA_PAIR.findall(answer.text)]
            pairs = [(q, a) for q, a in pairs if q and a][: self.options.count]
            if not pairs:
                yield self.teacher_rejection(
                    doc, subject, "unusable answer", "no `Q: ... A: ...` pair in the answer", answer
                )
                return
            for number, (question, reply) in enumerate(pairs, start=1):
                user = self.fill(question=question, **filled)
                yield self.make(
                    doc,
                    user,
                    reply,
                    self.task,
                    subject.number,
                    number,
                    response_format="text",
                    **meta,
                )
            return
        requests = [LIST_MARK.sub("", line).strip() for line in answer.text.splitlines()]
        requests = [r for r in requests if len(r.split()) >= 3 and "```" not in r]
        if not requests:
            yield self.teacher_rejection(
                doc, subject, "unusable answer", "no request of 3+ words, one per line", answer
            )
            return
        code = fenced(values["code"], values["language"])
        for number, request in enumerate(requests[: self.options.count], start=1):
            user = self.fill(request=request, **filled)
            yield self.make(
                doc, user, code, self.task, values["name"], subject.line, number, **meta
            )

    def teacher_rejection(
        self, doc: Example, subject: Subject, reason: str | None, detail: str, answer: Any
    ) -> Rejection:
        what = f"{subject.values['kind']} '{subject.values['name']}'"
        rejection = self.reject(doc, f"teacher {reason}", f"{what}: {detail}", subject.line)
        rejection.extra = {"teacher": self.model, "teacher_answer": answer.key}
        return rejection


@dataclass
class Subject:
    """What one question is about: a unit (or None for a section), its number within the
    document, its line, and the prompt's variables."""

    unit: Unit | None
    number: int
    line: int | None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Question:
    subject: Subject
    future: Future
