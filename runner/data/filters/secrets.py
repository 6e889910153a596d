"""`secrets`: redact credentials in place (or drop the example), every redaction counted.

Detection is ``secret_scan.find_secrets`` (detect-secrets' plugins and filters, with positions);
this filter applies it to every turn and says what it found.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal

from runner.data.example import Example
from runner.data.filters.base import Filter
from runner.data.filters.secret_scan import find_secrets, redact
from runner.data.outcome import Verdict, alter, drop
from runner.data.registries import FILTERS
from runner.recipe.fields import Operation


class Redactor:
    """Redacts a text and counts what it found by kind."""

    def __init__(self, placeholder: str):
        self.placeholder = placeholder

    def redact_text(self, text: str, filename: str, found: Counter[str]) -> str:
        findings = find_secrets(text, filename)
        found.update(f.kind for f in findings)
        return redact(text, findings, self.placeholder) if findings else text

    def redact(self, text: str, filename: str, found: Counter[str]) -> str:
        """``text``, or a JSON document whose strings are redacted one by one: the data stage's
        report samples arrive as JSON (``Worker.scrub``), where a redaction across escapes
        would break the document and escaped quotes would hide a password from the patterns."""
        if text[:1] not in "{[":
            return self.redact_text(text, filename, found)
        try:
            value = json.loads(text)
        except ValueError:
            return self.redact_text(text, filename, found)
        return json.dumps(self.redact_value(value, found), ensure_ascii=False)

    def redact_value(self, value: Any, found: Counter[str]) -> Any:
        if isinstance(value, str):
            return self.redact_text(value, "", found)
        if isinstance(value, list):
            return [self.redact_value(v, found) for v in value]
        if isinstance(value, dict):
            return {k: self.redact_value(v, found) for k, v in value.items()}
        return value


@FILTERS.register
class SecretsFilter(Filter):
    """Redacts secrets in every turn with ``placeholder`` (``action: redact``), or drops the
    example (``action: drop``; the row in rejected.jsonl is redacted all the same)."""

    class Options(Operation):
        """Secret and credential redaction: private keys, provider tokens, passwords in code,
        config, URLs and prose (detect-secrets' detectors and filters)."""

        type: Literal["secrets"]
        placeholder: str = "<REDACTED_SECRET>"
        action: Literal["redact", "drop"] = "redact"

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.redactor = Redactor(options.placeholder)
        self.action = options.action

    def __call__(self, example: Example) -> Verdict | None:
        found: Counter[str] = Counter()
        filename = example.metadata.get("path") or ""
        if example.is_raw:
            example.text = self.redactor.redact_text(example.text, filename, found)
        for message in example.messages:
            message["content"] = self.redactor.redact_text(message["content"], filename, found)
        if not found:
            return None
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
        if self.action == "drop":
            return drop("contains secret", detail)
        return alter("redacted secret", detail, sum(found.values()))
