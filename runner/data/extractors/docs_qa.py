"""`docs_qa`: a documentation section as a question (its heading) and answer (its body)."""

from __future__ import annotations

from collections.abc import Iterator

from runner.data.example import Example
from runner.data.extractors.base import Extractor
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS


@EXTRACTORS.register("docs_qa")
class DocsQA(Extractor):
    """User: the instruction (default ``{title}``; ``{heading_path}`` and ``{path}`` also
    work). Assistant: the section body, Markdown and code blocks included."""

    default_instruction = "{title}"

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        meta = doc.metadata
        if not doc.text.strip():
            yield self.reject(
                doc, "empty section", f"'{meta.get('title')}' has no body", meta.get("line")
            )
            return
        user = self.fill(
            title=meta.get("title", ""),
            heading_path=meta.get("heading_path", ""),
            path=meta.get("path", ""),
        )
        yield self.make(doc, user, doc.text, response_format="text")
