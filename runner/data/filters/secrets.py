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

import bisect
import functools
import re
from collections import Counter
from typing import Literal

from runner.data.filters.base import Redaction
from runner.data.registries import FILTERS
from runner.recipe.fields import Operation

# Secret-ish key names. Matching starts at the keyword (`DB_PASSWORD` matches at `PASSWORD`),
# with bounded repetitions: a leading `[\w.-]*` made every pattern quadratic on long identifier
# runs (base64 blobs in test files) and the filter ran at 0.3 MB/s.
_WORDS = (
    r"(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"client[_-]?secret|auth[_-]?key|credentials?)"
)
_KEY = _WORDS + r"[A-Za-z0-9_.-]{0,40}"

# Cheap gates: the token patterns run only on texts with one of these prefixes, the keyword
# patterns only on texts with a keyword.
TOKEN_PREFIX = re.compile(
    r"AKIA|ASIA|AGPA|AIDA|AROA|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|[rs]k_(?:live|test)_"
    r"|AIza|sk-|hf_|npm_|pypi-|SG\.|eyJ|://|PRIVATE KEY"
)
KEYWORD = re.compile(r"(?i)" + _WORDS)

# Sure things, redacted by the first pass. Each pattern's group "s" is the secret.
TOKENS: dict[str, re.Pattern[str]] = {
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
    "url password": re.compile(r"://[^\s/:@'\"]{1,100}:(?P<s>[^\s/@'\"]{3,100})@"),
}
KEYED: dict[str, re.Pattern[str]] = {
    # `password = "..."`, `"api_key": "..."`, `token: '...'` with a quoted literal value.
    "quoted credential": re.compile(
        r"(?i)" + _KEY + r"[\"']?\s*(?:=|:|=>|:=)\s*[rbuf]?(?P<q>[\"'])(?P<s>[^\"'\n]{4,})(?P=q)"
    ),
    # `DB_PASSWORD=hunter2` (env files, shell) and `password: hunter2` (YAML).
    "env credential": re.compile(
        r"(?im)" + _KEY + r"(?:=|:[ \t]+)(?P<s>[^\s'\"#;,()\[\]{}]{4,})[ \t]*$"
    ),
}
# Literal prefixes that gate each token pattern: a substring test (C speed) decides whether the
# regex runs at all, since Python's `re` gets no literal fast path from an alternation.
GATES: dict[str, tuple[str, ...]] = {
    "private key": ("PRIVATE KEY",),
    "aws access key": ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"),
    "github token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab token": ("glpat-",),
    "slack token": ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"),
    "stripe key": ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
    "google api key": ("AIza",),
    "openai key": ("sk-",),
    "hugging face token": ("hf_",),
    "npm token": ("npm_",),
    "pypi token": ("pypi-AgE",),
    "sendgrid key": ("SG.",),
    "jwt": ("eyJ",),
    "url password": ("://",),
}

# Lines the second pass (keyed patterns, then detect-secrets) looks at: a key word next to an
# assignment (searched case-sensitively in the lower-cased text: 7x faster than `(?i)`), a long
# quoted base64/hex-looking string, or a literal one of detect-secrets' other detectors needs.
KEY_ASSIGN = re.compile(_KEY + r"[\"']?\s*(?:=|:|=>)\s*\S")
QUOTED_BLOB = re.compile(r"[\"'][A-Za-z0-9+/=_-]{20,}[\"']")
LITERALS = re.compile(r"AccountKey=|_authToken=|ibm|cloudant|softlayer|sq0[a-z]{3}-|EAAA")

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
        for kind, pattern in TOKENS.items():
            if any(gate in text for gate in GATES[kind]):
                text = pattern.sub(lambda m, kind=kind: self._replace(m, kind, found), text)
        numbers = candidate_lines(text)
        if not numbers:
            return text
        lines = text.split("\n")
        for number in numbers:  # the keyed patterns run on candidate lines only
            line = lines[number - 1]
            for kind, pattern in KEYED.items():
                line = pattern.sub(lambda m, kind=kind: self._replace(m, kind, found), line)
            lines[number - 1] = line
        candidates = [(n, lines[n - 1]) for n in numbers]
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


def candidate_lines(text: str) -> list[int]:
    """1-based numbers of the lines the second pass looks at."""
    lower = text.lower()
    if len(lower) != len(text):  # a few non-ASCII letters change length when lower-cased
        lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    offsets = [m.start() for m in KEY_ASSIGN.finditer(lower)]
    offsets += [m.start() for m in QUOTED_BLOB.finditer(text)]
    offsets += [m.start() for m in LITERALS.finditer(text)]
    if not offsets:
        return []
    starts = [0]
    position = text.find("\n")
    while position >= 0:
        starts.append(position + 1)
        position = text.find("\n", position + 1)
    return sorted({bisect.bisect_right(starts, offset) for offset in offsets})


def _too_weak(kind: str, secret: str) -> bool:
    # detect-secrets' GitHub detector reports only the "ghp" prefix as the value; the whole
    # token is caught by the first pass, so such fragments are not replaced on their own.
    return len(secret) < 6 and kind != "Secret Keyword" or PLACEHOLDER.match(secret) is not None


@FILTERS.register
class SecretsFilter(Redaction):
    """Redacts secrets in every turn with ``placeholder`` (``action: redact``), or drops the
    example (``action: drop``; the row in rejected.jsonl is redacted all the same)."""

    altered_reason = "redacted secret"
    dropped_reason = "contains secret"

    class Options(Operation):
        """Secret and credential redaction: detect-secrets plus private keys, tokens, env
        passwords."""

        type: Literal["secrets"]
        placeholder: str = "<REDACTED_SECRET>"
        action: Literal["redact", "drop"] = "redact"

    def __init__(self, options, tokens=None):
        super().__init__(options, tokens)
        self.redactor = Redactor(options.placeholder)
        self.action = options.action

    def redact(self, text: str, filename: str, found: Counter[str]) -> str:
        return self.redactor.redact(text, filename, found)
