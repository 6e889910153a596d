"""`secrets`: redact credentials in place (or drop the example), every redaction counted.

Two passes. A fast first pass runs one compiled pattern set over the text: it redacts what it
is sure of (private key blocks, provider tokens with fixed prefixes, passwords in URLs,
``PASSWORD=...`` assignments) and marks candidate lines (a secret-ish keyword next to an
assignment, a long quoted high-entropy-looking string, a known token prefix). Only those lines
go to ``detect-secrets``' plugins, which cost about 0.5 ms per line: scanning every line of a
large corpus would make this the slowest step by far, while skipping it would lose the recall
of its entropy and keyword detectors.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Any

from runner.data.example import Example
from runner.data.filters.base import Filter
from runner.data.outcome import Verdict, alter, drop
from runner.data.registries import FILTERS

_KEY = (
    r"(?:[A-Za-z0-9_.-]*(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key|client[_-]?secret|auth[_-]?key|credentials?)[A-Za-z0-9_.-]*)"
)

# Sure things, redacted by the first pass. Each pattern's group "s" is the secret.
SURE: dict[str, re.Pattern[str]] = {
    "private key": re.compile(
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?P<s>[\s\S]*?)"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
    ),
    "aws access key": re.compile(r"\b(?P<s>(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16})\b"),
    "github token": re.compile(
        r"\b(?P<s>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"
    ),
    "gitlab token": re.compile(r"\b(?P<s>glpat-[A-Za-z0-9_-]{20,})"),
    "slack token": re.compile(r"\b(?P<s>xox[abposr]-[A-Za-z0-9-]{10,})"),
    "stripe key": re.compile(r"\b(?P<s>[rs]k_(?:live|test)_[A-Za-z0-9]{16,})\b"),
    "google api key": re.compile(r"\b(?P<s>AIza[0-9A-Za-z_-]{35})"),
    "openai key": re.compile(r"\b(?P<s>sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,})"),
    "hugging face token": re.compile(r"\b(?P<s>hf_[A-Za-z0-9]{30,})\b"),
    "npm token": re.compile(r"\b(?P<s>npm_[A-Za-z0-9]{36})\b"),
    "pypi token": re.compile(r"\b(?P<s>pypi-AgE[A-Za-z0-9_-]{50,})"),
    "sendgrid key": re.compile(r"\b(?P<s>SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})"),
    "jwt": re.compile(r"\b(?P<s>eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"),
    "url password": re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'\"]+:(?P<s>[^\s/@'\"]{3,})@"),
    # `password = "..."`, `"api_key": "..."`, `token: '...'` with a quoted literal value.
    "quoted credential": re.compile(
        r"(?i)" + _KEY + r"[\"']?\s*(?:=|:|=>|:=)\s*[rbuf]?(?P<q>[\"'])(?P<s>[^\"'\n]{4,})(?P=q)"
    ),
    # `DB_PASSWORD=hunter2` (env files, shell) and `password: hunter2` (YAML).
    "env credential": re.compile(
        r"(?im)(?:^|(?<=\s))(?:export[ \t]+)?"
        + _KEY
        + r"(?:=|:[ \t]+)(?P<s>[^\s'\"#;,()\[\]{}]{4,})[ \t]*$"
    ),
}

# Lines worth showing to detect-secrets: a keyword next to an assignment, a long quoted
# base64/hex-looking string, or a prefix one of its detectors knows.
CANDIDATE = re.compile(
    r"(?i:" + _KEY + r"[\"']?\s*(?:=|:|=>)\s*\S)"
    r"|[\"'][A-Za-z0-9+/=_-]{20,}[\"']"
    r"|AccountKey=|AKC[a-zA-Z0-9]{10}|\bAP[0-9A-F][a-zA-Z0-9]{8}|\b[AS][CK][0-9a-f]{32}\b"
    r"|\bsq0[a-z]{3}-|\bEAAA|\b\d{8,10}:[0-9A-Za-z_-]{35}|\b[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\."
    r"|-us\d{1,2}\b|_authToken=|ibm|cloudant|softlayer"
)

# Values that are placeholders, not secrets.
PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>|\$\{?[\w.]+\}?|\{\{.*\}\}|%\(?\w*\)?s|\*+|x{3,}|\.{3,}|changeme|"
    r"(?:your|my)[-_ ]?\w*|example\w*|dummy|placeholder|none|null|nil|true|false|redacted|"
    r"password|passwd|secret|token|test|string|str|bytes|int|env|os\.environ.*|"
    r"<redacted_secret>)$"
)

# detect-secrets reports public IP addresses too; an address is not a credential.
SKIPPED_PLUGINS = {"IPPublicDetector"}


@functools.cache
def _detect_secrets_ready() -> bool:
    """Configure detect-secrets once per process: every plugin but IP addresses, default filters."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import cache_bust, configure_settings_from_baseline

    plugins = [
        {"name": cls.__name__}
        for cls in get_mapping_from_secret_type_to_class().values()
        if cls.__name__ not in SKIPPED_PLUGINS
    ]
    cache_bust()
    configure_settings_from_baseline({"plugins_used": plugins})
    return True


def scan_lines(lines: list[tuple[int, str]], filename: str) -> list[tuple[int, str, str]]:
    """``(line number, type, secret)`` found by detect-secrets' plugins and filters.

    Uses its line scanner directly (``scan_file`` would need a file on disk and scan every line);
    it is internal to detect-secrets 1.x, so tests pin its behaviour.
    """
    from detect_secrets.core.scan import _process_line_based_plugins

    _detect_secrets_ready()
    return [
        (s.line_number, s.type, s.secret_value)
        for s in _process_line_based_plugins(lines=lines, filename=filename)
        if s.secret_value
    ]


class Redactor:
    """Redacts secrets in a text and counts them by kind."""

    def __init__(self, placeholder: str):
        self.placeholder = placeholder

    def redact(self, text: str, filename: str, found: Counter[str]) -> str:
        for kind, pattern in SURE.items():
            if kind == "private key" and "PRIVATE KEY" not in text:
                continue
            text = pattern.sub(lambda m, kind=kind: self._replace(m, kind, found), text)
        if not CANDIDATE.search(text):
            return text
        lines = text.split("\n")
        candidates = [(i + 1, line) for i, line in enumerate(lines) if CANDIDATE.search(line)]
        secrets = sorted(scan_lines(candidates, filename), key=lambda s: -len(s[2]))
        for number, kind, secret in secrets:
            line = lines[number - 1]
            if self.placeholder in secret or secret not in line or _too_weak(kind, secret):
                continue
            lines[number - 1] = line.replace(secret, self.placeholder)
            found[kind] += 1
        return "\n".join(lines)

    def _replace(self, match: re.Match[str], kind: str, found: Counter[str]) -> str:
        secret = match.group("s")
        if kind != "private key" and PLACEHOLDER.match(secret.strip()):
            return match.group(0)
        if kind == "private key" and not secret.strip():
            return match.group(0)
        found[kind] += 1
        start, end = match.span("s") if kind != "private key" else match.span("s")
        offset = match.start()
        whole = match.group(0)
        replacement = f"\n{self.placeholder}\n" if kind == "private key" else self.placeholder
        return whole[: start - offset] + replacement + whole[end - offset :]


def _too_weak(kind: str, secret: str) -> bool:
    # detect-secrets' GitHub detector reports only the "ghp" prefix as the value; the whole
    # token is caught by the first pass, so such fragments are not replaced on their own.
    return len(secret) < 6 and kind != "Secret Keyword" or PLACEHOLDER.match(secret) is not None


@FILTERS.register("secrets")
class SecretsFilter(Filter):
    """Redacts secrets in every turn with ``placeholder`` (``action: redact``), or drops the
    example (``action: drop``; the row in rejected.jsonl is redacted all the same)."""

    def __init__(self, spec: dict[str, Any], tokens=None):
        super().__init__(spec, tokens)
        self.redactor = Redactor(spec.get("placeholder", "<REDACTED_SECRET>"))
        self.action = spec.get("action", "redact")

    def __call__(self, example: Example) -> Verdict | None:
        found: Counter[str] = Counter()
        filename = example.metadata.get("path") or "example.txt"
        if example.is_raw:
            example.text = self.redactor.redact(example.text, filename, found)
        for message in example.messages:
            message["content"] = self.redactor.redact(message["content"], filename, found)
        if not found:
            return None
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
        if self.action == "drop":
            return drop("contains secret", detail)
        return alter("redacted secret", detail, sum(found.values()))
