"""`secrets`: redact credentials in place (or drop the example), every redaction counted.

Detection is ``secret_scan.find_secrets`` (detect-secrets' plugins and filters, with positions);
this filter applies it to every turn and says what it found.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from runner.data.filters.base import Redaction
from runner.data.registries import FILTERS
from runner.recipe.fields import Operation


class Redactor:
    """Redacts a text and counts what it found by kind."""

    def __init__(self, placeholder: str):
        self.placeholder = placeholder

    def redact_text(self, text: str, filename: str, found: Counter[str]) -> str:
        # detect-secrets imports requests and its plugins (about 2 s): only where text is
        # scanned, not wherever a recipe is validated.
        from runner.data.filters.secret_scan import find_secrets, redact

        findings = find_secrets(text, filename)
        found.update(f.kind for f in findings)
        return redact(text, findings, self.placeholder) if findings else text


@FILTERS.register
class SecretsFilter(Redaction):
    """Redacts secrets in every turn with ``placeholder`` (``action: redact``), or drops the
    example (``action: drop``; the row in rejected.jsonl is redacted all the same)."""

    altered_reason = "redacted secret"
    dropped_reason = "contains secret"

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

    def redact(self, text: str, filename: str, found: Counter[str]) -> str:
        return self.redactor.redact_text(text, filename, found)
