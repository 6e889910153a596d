"""`docs_qa`: a documentation section as a question (its heading) and answer (its body)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from runner.data.example import Example
from runner.data.extractors.base import Extractor, ExtractorOptions
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS


@EXTRACTORS.register
class DocsQA(Extractor):
    """User: the instruction (default ``{title}``; ``{heading_path}`` and ``{path}`` also
    work). Assistant: the section body, Markdown and code blocks included."""

    class Options(ExtractorOptions):
        """For docs sections: the section heading becomes the question, the section body the
        answer."""

        type: Literal["docs_qa"]
        instruction: str = "{title}"

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
