"""Find credentials in a text and redact them, with detect-secrets' own detectors and filters.

detect-secrets reads a file line by line and reports secret *values*; a dataset needs *spans*
(what to replace) and must stay fast on tens of megabytes. So this module runs detect-secrets'
detectors as regular expressions with positions: its provider plugins' ``denylist`` patterns,
its keyword detector's patterns for the file's type (``REGEX_BY_FILETYPE``), its entropy
plugins' limits; and it applies its filters (``detect_secrets.filters.heuristic``: UUIDs,
sequential strings, templated values, ``$refs``, indirect references, id strings, lock and
swagger files; ``allowlist``: ``pragma: allowlist secret``). It adds only what detect-secrets
lacks, in the same forms:

- the whole body of a private key (its plugin reports the ``BEGIN`` line only);
- provider tokens it has no plugin for (Google, Hugging Face, Anthropic, npm, ...), written as
  ``RegexBasedDetector`` plugins;
- its keyword patterns extended to typed defaults (``password: str = "..."``), to names that end
  in token/key/credentials/... (only with a credential-shaped value), to ``key=value`` pairs of
  URLs and connection strings, and to ``redis://:password@host``;
- checks that keep code intact: a value that is a placeholder or an example (``sk-...``), a
  name (``"api_key"``), a published digest next to sha256/digest/checksum, or an expression is
  not a credential.

Its patterns that backtrack without end on long runs (minified code, blobs) get possessive
copies or a literal gate, and all per-match work is bounded, so one hostile file cannot stall a
data stage.

A pattern that Python's ``re`` cannot skip through (no literal prefix) runs only on a text
that holds its gate, and the keyword patterns only on lines where a keyword is used as a name
(``bench/bench_secrets.py`` prints the throughput with and without these gates).
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from detect_secrets.filters import heuristic
from detect_secrets.filters.allowlist import is_line_allowlisted
from detect_secrets.plugins import keyword as ds_keyword
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import (
    Base64HighEntropyString,
    HexHighEntropyString,
)
from detect_secrets.util.code_snippet import get_code_snippet
from detect_secrets.util.filetype import FileType, determine_file_type


@dataclass(frozen=True, order=True)
class Finding:
    """A credential at ``text[start:end]``; ``kind`` names the detector that found it."""

    start: int
    end: int
    kind: str


# ---------------------------------------------------------------- provider tokens


class ProviderPlugin(RegexBasedDetector):
    """A detect-secrets plugin for one provider's tokens detect-secrets has no plugin for;
    ``gates`` are literals every match contains (none: each pattern starts with a literal)."""

    secret_type = ""
    denylist: tuple[re.Pattern[str], ...] = ()
    gates: tuple[str, ...] = ()


def _plugin(secret_type: str, gates: tuple[str, ...], *patterns: str) -> type[ProviderPlugin]:
    name = re.sub(r"\W", "", secret_type.title()) + "Detector"
    attributes = {
        "secret_type": secret_type,
        "gates": gates,
        "denylist": tuple(re.compile(p) for p in patterns),
    }
    return type(name, (ProviderPlugin,), attributes)


# Token formats published by each provider (a prefix and an alphabet). detect-secrets 1.5 has
# no plugin for these, or one that misses current formats (Stripe test keys, OpenAI project
# keys, GitHub fine-grained tokens).
EXTRA_PLUGINS = (
    _plugin("Google API Key", (), r"AIza[0-9A-Za-z_-]{35}"),
    _plugin(
        "Google OAuth Secret",
        (),
        r"GOCSPX-[0-9A-Za-z_-]{28}",
        r"ya29\.[0-9A-Za-z_-]{30,}",
    ),
    _plugin("Hugging Face Token", (), r"hf_[A-Za-z0-9]{34,}"),
    _plugin("Anthropic API Key", (), r"sk-ant-(?:api|admin|oat)\d\d-[A-Za-z0-9_-]{80,}"),
    _plugin(
        "OpenAI API Key",
        ("sk-",),
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
        r"\bsk-[A-Za-z0-9]{48}\b",
    ),
    _plugin("npm Token", (), r"npm_[A-Za-z0-9]{36}"),
    _plugin("GitHub Fine-Grained Token", (), r"github_pat_[A-Za-z0-9_]{50,}"),
    _plugin(
        "Stripe Key",
        ("k_live_", "k_test_", "whsec_"),
        r"[rs]k_(?:live|test)_[0-9a-zA-Z]{24,}",
        r"whsec_[A-Za-z0-9]{32,}",
    ),
    _plugin("Slack App Token", (), r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"),
    _plugin("Mailgun Key", ("key-",), r"\bkey-[0-9a-f]{32}\b"),
    _plugin("DigitalOcean Token", (), r"do[opr]_v1_[a-f0-9]{64}"),
    _plugin("Shopify Token", (), r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    _plugin("Postman Key", (), r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),
    _plugin("Databricks Token", ("dapi",), r"\bdapi[a-f0-9]{32}\b"),
    _plugin("Vault Token", ("hvs.", "hvb."), r"\bhv[sb]\.[A-Za-z0-9_-]{24,}"),
    _plugin("Doppler Token", ("dp.",), r"\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,}"),
    _plugin("Age Secret Key", (), r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    _plugin(
        "Grafana Token",
        (),
        r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
        r"glc_[A-Za-z0-9+/]{32,}",
    ),
    _plugin("Linear Key", (), r"lin_api_[A-Za-z0-9]{40}"),
    _plugin("Atlassian Token", (), r"ATATT3[A-Za-z0-9_=-]{150,}"),
    _plugin("Azure Client Secret", ("Q~",), r"[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
    _plugin(
        "Square Access Token",
        (),
        r"sq0atp-[0-9A-Za-z_-]{22}",
        r"EAAA[A-Za-z0-9_-]{60}",
    ),
)

# Gates: what every match of a detect-secrets plugin contains, tested before its patterns run:
# literals (a substring test) or a pattern that starts with a literal (Python's `re` skips to a
# literal prefix fast; it cannot for an alternation or a character class). Plugins whose own
# patterns start with a literal need none. `tests/data/test_secrets.py` checks that every plugin
# detect-secrets ships has an entry here or in SKIPPED_PLUGINS, so an upgrade cannot add one
# unnoticed.
Gate = str | re.Pattern[str]
GATES: dict[str, tuple[Gate, ...]] = {
    "ArtifactoryDetector": ("AKC", re.compile(r"AP[\dA-F][a-zA-Z0-9]{8}")),
    "AWSKeyDetector": (),
    "AzureStorageKeyDetector": (),
    "BasicAuthDetector": (),
    "CloudantDetector": ("cloudant.com",),
    "DiscordBotTokenDetector": (re.compile(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),),
    "GitHubTokenDetector": (),
    "GitLabTokenDetector": (),
    "JwtTokenDetector": (),
    "MailchimpDetector": (re.compile(r"-us\d"),),
    "NpmDetector": ("_authToken=",),  # `//.+/:_authToken=`: `.+` backtracks on every `//`
    "OpenAIDetector": ("T3BlbkFJ",),  # `sk-[...]*[...]{20}T3BlbkFJ` backtracks on `task-...`
    "PypiTokenDetector": (),
    "SendGridDetector": (),
    "SlackDetector": ("xox", "XOX", "Xox", "hooks.slack.com"),
    "SoftlayerDetector": ("api.softlayer.com",),
    "SquareOAuthDetector": (),
    "StripeDetector": ("k_live_",),
    "TelegramBotTokenDetector": (re.compile(r":[0-9A-Za-z_-]{35}"),),
    "TwilioKeyDetector": (),
}
# detect-secrets' patterns that backtrack without end on long runs (it scans short lines; a
# dataset has minified code and blobs): the same patterns with possessive quantifiers (Python
# 3.11). JWT's runs cannot hold the `.` that follows them, so it matches the same strings;
# Slack's no longer gives a token back to end on a digit group (`xoxb-1-2-` is no token).
# `tests/data/test_secrets.py` checks the originals are still detect-secrets' own.
LINEAR_PATTERNS = {
    r"eyJ[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?": (
        r"eyJ[A-Za-z0-9-_=]++\.[A-Za-z0-9-_=]++\.?[A-Za-z0-9-_.+/=]*?"
    ),
    r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+": r"xox(?:a|b|p|o|s|r)-(?:\d++-)++[a-z0-9]+",
}
# Patterns that are `name = value` assignments (key, pwd, pass, token...) run on keyword lines
# only, with the keyword patterns: over whole texts they cost 4-60 MB/s each.
KEYWORD_LINE_PATTERNS = {
    "AWSKeyDetector": {1},  # `aws.{0,20}?(?:key|pwd|pw|password|pass|token)...`
    "CloudantDetector": {0, 1},
    **dict.fromkeys(("IbmCloudIamDetector", "IbmCosHmacDetector", "SoftlayerDetector"), {0}),
}
# Plugins whose patterns capture the secret in a group (the rest capture a prefix, or nothing).
SECRET_GROUP_PLUGINS = {
    "AWSKeyDetector",
    "BasicAuthDetector",
    "NpmDetector",
    *KEYWORD_LINE_PATTERNS,
}
# Handled apart: private keys (whole blocks), the keyword and entropy detectors (on keyword
# lines, below). A public IP address is not a credential.
SKIPPED_PLUGINS = {
    *("PrivateKeyDetector", "KeywordDetector", "IPPublicDetector"),
    *("Base64HighEntropyString", "HexHighEntropyString"),
}


@dataclass(frozen=True)
class TokenDetector:
    kind: str  # the plugin's secret_type, lower-cased
    gates: tuple[Gate, ...]  # none: the patterns start with a literal
    patterns: tuple[re.Pattern[str], ...]
    secret_group: bool


@functools.cache
def token_detectors() -> tuple[tuple[TokenDetector, ...], tuple[TokenDetector, ...]]:
    """detect-secrets' provider plugins and ours: (run on whole texts, run on keyword lines)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    shipped = get_mapping_from_secret_type_to_class().values()
    texts, lines = [], []
    for cls in [*shipped, *EXTRA_PLUGINS]:
        name = cls.__name__
        if name in SKIPPED_PLUGINS:
            continue
        on_lines = KEYWORD_LINE_PATTERNS.get(name, set())
        # `^`/`$` in a plugin's pattern mean a line's ends: it scans lines, we scan texts.
        patterns = [
            re.compile(LINEAR_PATTERNS.get(p.pattern, p.pattern), p.flags | re.MULTILINE)
            for p in cls.denylist
        ]
        gates = getattr(cls, "gates", None) or GATES.get(name, ())
        kind, group = cls.secret_type.lower(), name in SECRET_GROUP_PLUGINS
        text_patterns = tuple(p for i, p in enumerate(patterns) if i not in on_lines)
        line_patterns = tuple(p for i, p in enumerate(patterns) if i in on_lines)
        if text_patterns:
            texts.append(TokenDetector(kind, gates, text_patterns, group))
        if line_patterns:
            lines.append(TokenDetector(kind, (), line_patterns, group))
    return tuple(texts), tuple(lines)


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_-]*")
_NAMED_VALUE = re.compile(r"[A-Za-z]\w*=")


def _token_span(detector: TokenDetector, match: re.Match[str]) -> tuple[int, int]:
    """What a provider pattern's match redacts: its secret group (a URL's password), or else
    the whole match widened over adjacent token characters, so that a pattern that matches
    the first 24 characters of a longer key (Stripe's) does not leave the rest behind."""
    text = match.string
    if detector.secret_group and match.lastindex:
        spans = [match.span(i) for i in range(1, match.lastindex + 1)]
        return max((s for s in spans if s[0] >= 0), key=lambda s: s[1] - s[0])
    start, end = match.span()
    named = _NAMED_VALUE.match(text, start, end)  # `AccountKey=...`: the name stays
    start = named.end() if named else start
    while start < end and text[start] in " \t\r\n=:\"'":
        start += 1
    while end > start and text[end - 1] in " \t\r\n\"'":
        end -= 1
    end = _TOKEN_RUN.match(text, end, end + 1000).end()  # a token is shorter; a blob is no token
    floor = max(0, start - 200)
    while start > floor and _TOKEN_CHAR.match(text, start - 1):
        start -= 1
    return start, end


def _token_findings(text: str, detectors: Iterable[TokenDetector]) -> Iterator[Finding]:
    for detector in detectors:
        if detector.gates and not any(_opens(gate, text) for gate in detector.gates):
            continue
        jwt = detector.kind == "json web token"
        for pattern in detector.patterns:
            for match in _jwt_matches(pattern, text) if jwt else pattern.finditer(text):
                if jwt and not _valid_jwt(match.group(0)):
                    continue
                whole = not (detector.secret_group and match.lastindex)
                if whole and _inside_a_run(match):
                    continue
                start, end = _token_span(detector, match)
                value = text[start:end]
                if detector.kind == "basic auth credentials" and _url_placeholder(match, value):
                    continue
                if heuristic.is_templated_secret(value) or heuristic.is_sequential_string(value):
                    continue
                if _FILLER.search(value):  # `ghp_xxxx...`, `AKIAXXXX...`: an example
                    continue
                if whole and len(set(value)) < 8:  # no token is that plain (`ACCAGGTT...`)
                    continue
                yield Finding(start, end, detector.kind)


# Token prefixes of capitals (AWS's AKIA/ASIA/ACCA, Square's EAAA) turn up inside base64 blobs
# (fonts, data: URIs, ssh-rsa public keys) and DNA strings; a token starts after a delimiter.
_CAPITALS = re.compile(r"[A-Z][A-Z0-9]{3}")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _inside_a_run(match: re.Match[str]) -> bool:
    """Whether a match that starts with capitals continues a longer run of base64 characters."""
    start = match.start()
    return (
        start > 0
        and match.string[start - 1] in _BASE64_CHARS
        and _CAPITALS.match(match.string, start) is not None
    )


def _opens(gate: Gate, text: str) -> bool:
    return gate in text if isinstance(gate, str) else gate.search(text) is not None


_BASE64URL_RUN = re.compile(r"[A-Za-z0-9_=-]*")


def _jwt_matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """The JWT pattern's matches, tried once per run of base64url: an `eyJ` later in a run
    where one failed fails too (it needs the same `.` at the same end), and trying each made a
    long blob quadratic."""
    position = text.find("eyJ")
    while position >= 0:
        match = pattern.match(text, position)
        if match:
            yield match
            position = text.find("eyJ", match.end())
        else:
            position = text.find("eyJ", _BASE64URL_RUN.match(text, position).end())


def _valid_jwt(token: str) -> bool:
    from detect_secrets.plugins.jwt import JwtTokenDetector

    return JwtTokenDetector.is_formally_valid(token)


# Hosts reserved for documentation (RFC 2606, RFC 6761): credentials in their URLs are examples.
_EXAMPLE_HOST = re.compile(r"@[^/\s'\"]*(?:\bexample\.(?:com|org|net)|\.example|\.invalid)\b")


def _url_placeholder(match: re.Match[str], password: str) -> bool:
    tail = match.string[match.start() : match.end() + 80]
    return _placeholder(password) or bool(_EXAMPLE_HOST.search(tail))


# `redis://:password@host` (no user name): detect-secrets' pattern needs one.
_NO_USER_URL = re.compile(r"://:([^\s:/?#\[\]@!$&'()*+,;=\"]{3,})@")


def _url_findings(text: str) -> Iterator[Finding]:
    if "://:" not in text:
        return
    for match in _NO_USER_URL.finditer(text):
        if not _url_placeholder(match, match.group(1)):
            yield Finding(*match.span(1), "basic auth credentials")


# ---------------------------------------------------------------- private keys


# Every header detect-secrets' PrivateKeyDetector names (and PKCS#8 "ENCRYPTED PRIVATE KEY",
# which it misses), with PEM's five dashes or SSH2's four.
_KEY_BEGIN = re.compile(r"-{4,5} ?BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)? ?-{4,5}")
_KEY_END = re.compile(r"-{4,5} ?END ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)? ?-{4,5}")
# Without an END line (a truncated sample), the key runs as far as armour can: base64, header
# lines ("Proc-Type: 4,ENCRYPTED"), line breaks, and the "\n" escapes of a key held in a string.
_ARMOUR = re.compile(r"(?:[A-Za-z0-9+/=:,. \t\r\n-]|\\[nr])*")
_ARMOUR_EDGE = re.compile(r"(?:\s|\\[nr])+")
_ARMOUR_LINE = re.compile(r"(?:[A-Za-z0-9+/=]*|[A-Z][\w-]*: [^\n]*)\s*")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{16}")
_PUTTY = re.compile(r"Private-Lines: *\d+[^\S\n]*\n((?:[A-Za-z0-9+/=]*\n?)*?Private-MAC: *\S*)")


def _key_findings(text: str) -> Iterator[Finding]:
    if "PRIVATE KEY" in text:
        position = 0
        for end in _KEY_END.finditer(text):
            begin = None
            for begin in _KEY_BEGIN.finditer(text, position, end.start()):
                following = _KEY_BEGIN.search(text, begin.end(), end.start())
                if following:  # a BEGIN without its END before the next BEGIN: cut short
                    yield from _body(text, begin.end(), _armour_end(text, begin, following.start()))
                    continue
                yield from _body(text, begin.end(), end.start())
            if begin is None:  # the second half of a key (a completion example): back to armour
                yield from _body(text, _armour_before(text, position, end.start()), end.start())
            position = end.end()
        begins = list(_KEY_BEGIN.finditer(text, position))
        for index, begin in enumerate(begins):  # no END after them: cut short
            limit = begins[index + 1].start() if index + 1 < len(begins) else len(text)
            yield from _body(text, begin.end(), _armour_end(text, begin, limit))
    if "PuTTY-User-Key-File" in text:
        for match in _PUTTY.finditer(text):
            yield Finding(*match.span(1), "private key")


def _armour_end(text: str, begin: re.Match[str], limit: int) -> int:
    return _ARMOUR.match(text, begin.end(), limit).end()


def _body(text: str, start: int, stop: int) -> Iterator[Finding]:
    start, stop = _strip_edges(text, start, stop)
    if _BASE64_RUN.search(text, start, stop):  # `...` in documentation is not a key
        yield Finding(start, stop, "private key")


def _armour_before(text: str, floor: int, position: int) -> int:
    """Where the whole lines of armour (base64, `Name: value` headers) ending at ``position``
    begin: a key's second half has no BEGIN line to start from."""
    start = position
    while start > floor:
        line_start = max(text.rfind("\n", floor, start - 1) + 1, floor)
        if not _ARMOUR_LINE.fullmatch(text, line_start, start):
            break
        start = line_start
    return start


def _strip_edges(text: str, start: int, stop: int) -> tuple[int, int]:
    """The key's body without the blank lines (or "\\n" escapes) around it: they stay."""
    while start < stop:
        edge = _ARMOUR_EDGE.match(text, start, stop)
        if not edge:
            break
        start = edge.end()
    body = text[start:stop]
    trimmed = re.sub(r"(?:\s|\\[nr])+$", "", body)
    return start, start + len(trimmed)


# ---------------------------------------------------------------- keywords and their values

# Keyword lines: a line goes to the keyword patterns only if its lower-cased text holds one of
# these (detect-secrets' DENYLIST words, the names below, `key=value` pairs of URLs).
KEYWORD_LITERALS = (
    *("pass", "pw", "secret", "key", "token", "cred", "auth", "salt", "signing", "bearer"),
    *("cookie", "session", "contrase", "sig="),
)

# Names that hold a credential when their value looks like one (not any value: `token_type =
# "bare-quoted-string"` and `sort_key = "name"` are code). detect-secrets' own DENYLIST
# (password, secret, api_key...) is matched by its patterns; these extend it.
_NOUNS = (
    r"(?:token|key|credentials?|creds?|auth|salt|signing|bearer|cookie|session|passphrase"
    r"|passcode)"
)
_Q = ds_keyword.QUOTE
_S = ds_keyword.SECRET
_W = ds_keyword.OPTIONAL_WHITESPACE
_CLOSE = ds_keyword.CLOSING
# The names below start with `\w*`: tried inside a word, each would eat the rest of the word
# and give it back one character at a time (quadratic in the word's length: these patterns ran
# at 2 MB/s on the bench corpus's keyword lines). A match inside a word implies one from the
# word's start (`\w*` takes the characters between), which `finditer` tries first and reports,
# and a match ends on a quote or before a blank, never inside a word: so starting only at a
# word's start (`(?<!\w)`) finds the same matches, 4-5 times faster.
_NAME_START = r"(?<!\w)"
# `name = "value"`, `name: "value"`, `"name": "value"`, `name => "value"` where the name ends
# with one of _NOUNS (`(?![a-z0-9_])` under IGNORECASE: `apiKeyHeader`, `token_type` do not).
NOUN_QUOTED = re.compile(
    rf"{_NAME_START}(?P<n>\w*{_NOUNS})(?![a-z0-9_]){_CLOSE}{_W}(?::=|={{1,3}}|=>|:){_W}"
    rf"(?P<q>{_Q})(?P<v>{_S})(?P=q)",
    re.IGNORECASE,
)
# The same, unquoted, in config files and prose (`GITHUB_TOKEN=...`, `token: ...`).
NOUN_BARE = re.compile(
    rf"{_NAME_START}(?P<n>\w*{_NOUNS})(?![a-z0-9_]){_CLOSE}[ \t]*(?:=|:)[ \t]*"
    rf"(?P<v>[^\s'\"`,;]+)",
    re.IGNORECASE,
)
# Typed defaults and annotations, `def login(user, password: str = "...")`, `val password:
# String = "..."`: detect-secrets' patterns expect the operator right after the name.
TYPED = re.compile(
    rf"{_NAME_START}(?P<n>\w*(?:{ds_keyword.DENYLIST_REGEX}|{_NOUNS}))"
    rf"\s*:\s*[A-Za-z_][\w.\[\], |]{{0,60}}?"
    rf"\s*=\s*(?P<q>{_Q})(?P<v>{_S})(?P=q)",
    re.IGNORECASE,
)
# `key=value` pairs of URLs and connection strings (`?password=...&`, `;Password=...;`).
PAIR = re.compile(
    r"(?:^|(?<=[?&;\s\"'(]))(?P<n>(?:db_?)?password|passwd|pwd|secret|client_secret|api_?key"
    r"|access_token|auth_?token|token|sig)=(?P<v>[^&;\s'\"#<>()]{3,})",
    re.IGNORECASE,
)

# HTTP authorization: `Authorization: Bearer ...`, `Basic ...`, `-H "Authorization: token ..."`.
AUTH_HEADER = re.compile(
    r"(?i)(?P<n>authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)|\bbearer)\s+"
    r"(?P<v>[A-Za-z0-9._~+/-]{12,}=*)"
)

# detect-secrets' keyword patterns for a file's type, with the group holding the value. Config
# files (and those it does not know: .env, shell, prose) accept unquoted values.
CONFIG_TYPES = {FileType.YAML, FileType.CONFIG, FileType.INI, FileType.PROPERTIES, FileType.TOML}
CONFIG_NAMES = re.compile(
    r"(?:^|/)(?:\.env[\w.-]*|[\w.-]*\.env|\.envrc|Dockerfile[\w.-]*|\.npmrc|\.pypirc|\.netrc|"
    r"credentials|config|"
    r"[\w.-]*\.(?:sh|bash|zsh|cnf|conf|cfg|ini|properties|toml|ya?ml|md|txt|rst|tfvars))$",
    re.IGNORECASE,
)


@functools.cache
def _file_rules(filename: str) -> tuple[bool, tuple[tuple[re.Pattern[str], int], ...]]:
    """(unquoted values count, detect-secrets' keyword patterns with their value group)."""
    filetype = determine_file_type(filename)
    config = filetype in CONFIG_TYPES or bool(CONFIG_NAMES.search(filename)) or not filename
    if config:
        patterns = ds_keyword.CONFIG_DENYLIST_REGEX_TO_GROUP
    else:
        patterns = ds_keyword.REGEX_BY_FILETYPE.get(
            filetype, ds_keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP
        )
    return config, tuple(patterns.items())


# Values that are not credentials: placeholders, booleans, types, examples.
PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>|\[[^\]]*\]|\{[^}]*\}|\$\{?[\w.:-]+\}?|%\(?\w*\)?[sd]|\*+|x+|\.+|-+|_+|\?+|"
    r"0+|1234\w*|changeme|change_?this|changeit|(?:your|my|the|some)[-_ ]?\w*|example\w*|"
    r"sample\w*|dummy\w*|fake\w*|placeholder\w*|redacted|none|null|nil|undefined|true|false|"
    r"yes|no|on|off|enabled?|disabled?|required|optional|default|"
    r"(?:string|str|bytes|int|bool|text)[?!]?(?:\[\])?|value|env|"
    r"password|passwd|passphrase|pass|pwd|secret|token|key|test|testing|foo|bar|baz|qux|blah|"
    r"spam|eggs|admin|root|user|guest|abc|todo|fixme|tbd|x-oauth-basic|"
    r"os\.environ.*|process\.env.*|getenv.*|env\(.*)$"
)
# Filler that marks an example value: `sk-...`, `ghp_xxxxxxxx`, `AKIAXXXXXXXXXXXXXXXX`.
# A run of eight of one character (`CHANGEMEaaaaaaaa...`) is filler too: a generated key of 40
# characters has one with a chance under 1e-10. AWS's documented keys end in EXAMPLE.
_FILLER = re.compile(r"\.\.\.|…|x{4,}|X{4,}|\*{3,}|0{8,}|(.)\1{7,}|EXAMPLE")
# A value that names a credential rather than holding one: `"api_key"`, `"PASSWORD_FIELD"`.
_NAMELIKE = re.compile(
    r"(?i)^[a-z_.-]*(?:pass|pwd|secret|token|key|cred|auth|salt|session|cookie)[a-z_.-]*$"
)
# Published digests: a hex value on a line naming a hash is a checksum, not a key.
_DIGEST_WORDS = re.compile(
    r"(?i)sha-?(?:1|224|256|384|512)|md5|blake2|digest|checksum|\bhash|integrity|fingerprint|etag"
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_SHAPE = re.compile(r"[A-Za-z0-9+/=_.~-]+")
_URL = re.compile(r"[A-Za-z][\w+.-]*://")
_EXPRESSION = re.compile(r"[A-Za-z_$][\w$.]*(?:\(\)?)?")
_B64 = Base64HighEntropyString()
_HEXP = HexHighEntropyString()


def credential_shaped(value: str) -> bool:
    """Random enough to be a generated key: above detect-secrets' entropy limits (base64 4.5,
    hex 3.0), or, for values shorter than those limits assume, at least 16 characters mixing
    letters and digits with no more repetition than a random string has and no `/` or `.`."""
    if len(value) < 12 or not _SHAPE.fullmatch(value):
        return False
    if _HEX.fullmatch(value):
        return len(value) >= 16 and _HEXP.calculate_shannon_entropy(value) > _HEXP.entropy_limit
    entropy = _B64.calculate_shannon_entropy(value)
    if entropy > _B64.entropy_limit:
        return True
    mixed = any(c.isalpha() for c in value) and any(c.isdigit() for c in value)
    if "/" in value or "." in value:  # `k8s.io/cluster/name`: a path or a domain
        return False
    if _IDENTIFIER.fullmatch(value):  # `Ipv6CidrAssociations`, `opc-multipart-sha256`
        return False
    return len(value) >= 16 and mixed and entropy >= math.log2(len(value)) - 0.85


def _placeholder(value: str) -> bool:
    return (
        PLACEHOLDER.match(value) is not None
        or value.casefold() in _PASSWORD_WORDS
        or _FILLER.search(value) is not None
        or len(set(value)) == 1
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_not_alphanumeric_string(value)
    )


# The last word of a name decides how sure the name is: `DB_PASSWORD` holds a password whatever
# its value; `password_file`, `secretName` and `token` (lexers have tokens) need a value that
# looks generated.
_SURE_LAST_WORDS = {
    *("password", "passwd", "pwd", "passphrase", "passcode", "secret", "apikey", "dbpass"),
    *("contraseña", "contrasena", "keypass", "authorization"),
}
_SURE_KEY_PREFIXES = {"api", "auth", "private", "priv", "secret", "access", "client", "service"}
_WORDS = re.compile(r"[A-Z]?[a-zñ]+|[A-Z]+(?![a-z])|\d+")


def name_is_sure(name: str) -> bool:
    """Whether a name alone says its value is a credential (`DB_PASSWORD`, `apiKey`)."""
    words = [w.lower() for w in _WORDS.findall(name)]
    if not words:
        return False
    last = words[-1]
    if last in _SURE_LAST_WORDS:
        return True
    if last == "pass" and len(words) > 1 and words[-2] in {"db", "database", "key"}:
        return True
    return last == "key" and len(words) > 1 and words[-2] in _SURE_KEY_PREFIXES


@dataclass
class _Candidate:
    start: int  # of the value, in the line
    end: int
    name_start: int
    name: str
    quoted: bool
    kind: str


def _keyword_findings(text: str, filename: str) -> Iterator[Finding]:
    lower = text.lower()
    if len(lower) != len(text):  # a few characters change length when lower-cased
        lower = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    if not any(literal in lower for literal in KEYWORD_LITERALS):
        return
    config, ds_patterns = _file_rules(filename)
    code_only = heuristic.is_lock_file(filename) or heuristic.is_swagger_file(filename)
    pragmas = "allowlist" in text or "whitelist" in text
    _, line_plugins = token_detectors()
    for line_start, line_end in _keyword_lines(text, lower):
        line = text[line_start:line_end]
        for finding in _token_findings(line, line_plugins):
            yield Finding(line_start + finding.start, line_start + finding.end, finding.kind)
        if code_only:  # detect-secrets skips lock and swagger files: digests and examples
            continue
        view, where = _unescaped(line)
        for candidate in _line_candidates(view, ds_patterns, config):
            value = view[candidate.start : candidate.end]
            if not _keep(value, candidate, view, config):
                continue
            if pragmas and _allowlisted(text, filename, line_start, line):
                continue
            start, end = where[candidate.start], where[candidate.end - 1] + 1
            yield Finding(line_start + start, line_start + end, candidate.kind)


def _unescaped(line: str) -> tuple[str, list[int]]:
    """The line with escaped quotes unescaped (`"{\\"password\\": \\"...\\"}"` in code holds a
    JSON password), and where each of its characters is in the line."""
    if '\\"' not in line and "\\'" not in line:
        return line, range(len(line))  # type: ignore[return-value]
    chars, where = [], []
    index = 0
    while index < len(line):
        if line[index] == "\\" and line[index + 1 : index + 2] in ('"', "'"):
            index += 1
        chars.append(line[index])
        where.append(index)
        index += 1
    return "".join(chars), where


# What every keyword pattern needs around its name: an operator after it (`=`, `:`, `!=`,
# C++'s `secret("...")` and `.assign("...")`), a value after a blank (`Bearer ...`, IBM's
# `key  value`), or a comparison before it (`"..." == password`). A keyword without one (`for
# key in d`, `self._key`) does not send its line to the patterns.
_AFTER_NAME = re.compile(
    r"""[\w-]*[\]'"`\\]{0,3}\s*(?:[=:!(]|\.assign\()|[\w-]*\s+[a-z0-9._~+/-]{12}"""
)
_BEFORE_NAME = re.compile(r"[=!]=\s*[\w.-]*$")


def _keyword_lines(text: str, lower: str) -> list[tuple[int, int]]:
    """(start, end) of every line where a keyword literal is used as a name; a long line
    (minified code) is cut into windows around its keywords."""
    spans = []
    for literal in KEYWORD_LITERALS:
        position = lower.find(literal)
        while position >= 0:
            if not _AFTER_NAME.match(lower, position, position + 200) and not _BEFORE_NAME.search(
                lower, max(0, position - 60), position
            ):
                position = lower.find(literal, position + len(literal))
                continue
            start = text.rfind("\n", 0, position) + 1
            end = text.find("\n", position)
            end = len(text) if end < 0 else end
            if end - start > 2000:
                start, end = max(start, position - 300), min(end, position + 700)
                position = lower.find(literal, position + len(literal))
            else:
                position = lower.find(literal, end)
            spans.append((start, end))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:  # overlapping windows merge, up to a bounded region
        if merged and start <= merged[-1][1] and end - merged[-1][0] <= 8000:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _line_candidates(
    line: str, ds_patterns: Iterable[tuple[re.Pattern[str], int]], config: bool
) -> Iterator[_Candidate]:
    quote = "'" in line or '"' in line or "`" in line
    if quote or config:
        for pattern, group in ds_patterns:
            for match in pattern.finditer(line):
                yield _candidate(match, match.span(group), match.start())
    if quote:
        for match in NOUN_QUOTED.finditer(line):
            yield _candidate(match, match.span("v"), match.start("n"))
        if ":" in line:
            for match in TYPED.finditer(line):
                if not _in_string(line, match.start("n")):  # not `"Set-Cookie: a="b""`
                    yield _candidate(match, match.span("v"), match.start("n"))
    if config:
        for match in NOUN_BARE.finditer(line):
            yield _candidate(match, match.span("v"), match.start("n"))
    for match in AUTH_HEADER.finditer(line):
        start, end = match.span("v")
        header = "authorization" if match.group("n")[0] in "aA" else "bearer"
        yield _Candidate(start, end, match.start("n"), header, False, "authorization header")
    if "=" in line:
        for match in PAIR.finditer(line):
            start, end = match.span("v")
            name_start = match.start("n")
            if not _in_string(line, name_start) and (not config or _in_call(line, name_start)):
                continue  # `connect(password=password)` is a keyword argument
            yield _Candidate(
                start, end, name_start, match.group("n"), False, "connection string credential"
            )


def _in_string(line: str, position: int) -> bool:
    """Whether ``position`` is inside a string literal (an odd number of quotes before it on
    its line, within 1,000 characters)."""
    start = max(line.rfind("\n", 0, position) + 1, position - 1000)
    return line.count('"', start, position) % 2 == 1 or line.count("'", start, position) % 2 == 1


def _candidate(match: re.Match[str], span: tuple[int, int], name_at: int) -> _Candidate:
    """A keyword pattern's value, and the whole name around the keyword it matched (its
    patterns match `PASSWORD` inside `DB_PASSWORD`)."""
    line = match.string
    start, end = span
    quoted = start > 0 and line[start - 1] in "'\"`"
    if not quoted:  # an unquoted value ends at a blank: `PASSWORD=x  # comment`
        blank = re.search(r"\s", line[start:end])
        end = start + blank.start() if blank else end
        if _in_call(line, name_at):  # an argument ends at the next comma
            comma = line.find(",", start, end)
            end = comma if comma >= 0 else end
        end = _without_closers(line, start, end)
    name_start = name_at
    if name_start < start:
        floor = max(0, name_at - 100)
        while name_start > floor and (
            line[name_start - 1].isalnum() or line[name_start - 1] in "_-"
        ):
            name_start -= 1
        name = _NAME.match(line, name_start, name_start + 200).group(0)
    else:  # `"value" == my_password`: the name comes after the value
        name_start = match.end()
        while name_start > match.end() - 100 and (
            line[name_start - 1].isalnum() or line[name_start - 1] == "_"
        ):
            name_start -= 1
        name = line[name_start : match.end()]
    kind = "quoted credential" if quoted else "unquoted credential"
    if quoted and name_start < start:
        start, end = _tuple_value(line, name_start, start, end)
    return _Candidate(start, end, min(name_start, start), name, quoted, kind)


_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _without_closers(line: str, start: int, end: int) -> int:
    """The end of an unquoted value without the brackets that close around it:
    `f(password: password)` holds `password`; `PASSWORD=a(b)c)` keeps its own pairs."""
    while end > start and line[end - 1] in _CLOSERS:
        closer = line[end - 1]
        value = line[start:end]
        if value.count(closer) <= value.count(_CLOSERS[closer]):
            break
        end -= 1
    return end


def _in_call(line: str, name_start: int) -> bool:
    """Whether a name stands among a call's arguments on its line (more `(` than `)` before
    it): `.authenticate(username: user, password: password)` in a README's Swift."""
    before = line[line.rfind("\n", 0, name_start) + 1 : name_start]
    return before.count("(") > before.count(")")


_NAME = re.compile(r"[\w-]*")
_TARGETS = re.compile(r"(?:[\w.\[\]'\"]+\s*,\s*)+$")
_QUOTED = re.compile(r"""\s*(['"])((?:(?!\1).)*)\1\s*(,|$)?""")


def _tuple_value(line: str, name_start: int, start: int, end: int) -> tuple[int, int]:
    """In `user, password = "wile", "coyote"` the keyword patterns take the first value; the
    password is the value in the name's place."""
    before = name_start - 1
    while before >= 0 and line[before] in " \t(":
        before -= 1
    if before < 0 or line[before] != ",":
        return start, end
    targets = _TARGETS.search(line, max(0, name_start - 200), name_start)
    if not targets:
        return start, end
    place = line.count(",", targets.start(), name_start)
    position = start - 1
    for index in range(place + 1):
        value = _QUOTED.match(line, position)
        if not value or (value.group(3) is None and index < place):
            return start, end  # fewer values than names: not a tuple assignment
        found, position = value.span(2), value.end()
    return found


def _keep(value: str, candidate: _Candidate, line: str, config: bool) -> bool:
    """detect-secrets' filters on a keyword's value, then ours: placeholders, names, digests,
    expressions; a name that is not sure needs a credential-shaped value."""
    if len(value) < 4 or any(c.isspace() for c in value) or _placeholder(value):
        return False
    if _URL.match(value):  # a URL's own password is the URL detectors' (example hosts...)
        return False
    if candidate.kind == "authorization header" and _basic_placeholder(value):
        return False  # `Basic VXNlcm5hbWU6UGFzc3dvcmQ=` is "Username:Password"
    if heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value):
        return False
    own = line[candidate.name_start : candidate.end + 200]  # this assignment, not another
    if heuristic.is_likely_id_string(value, own) or heuristic.is_indirect_reference(own):
        return False
    if _NAMELIKE.match(value) and not any(c.isdigit() for c in value):
        return False
    if _HEX.fullmatch(value) and _DIGEST_WORDS.search(_own_line(line, candidate)):
        return False
    if _KEY_FILE.fullmatch(value) or _TYPE_NAME.fullmatch(value):
        return False  # `ssh_private_key: ~/keys/ray.pem`, `'password': 'SensitiveAttribute'`
    squashed, name = _squashed(value), _squashed(candidate.name)
    if squashed == name or (len(_WORDS.findall(value)) > 1 and squashed in name):
        # `PLUGIN_SHA256_PASSWORD = "sha256_password"`: a constant named after its value (one
        # word of the name is not: `POSTGRES_PASSWORD=postgres` is a password)
        return False
    first_word = _WORDS.match(candidate.name)
    if first_word and first_word.group(0).lower() == "public":
        return False  # `publicKeyToken="1fc8b3b9a1e18e3b"`: published, not secret
    if candidate.quoted and _CONCATENATED.match(line, candidate.end + 1):
        return credential_shaped(value)  # `api_key = "resource/v2.1/" + resource_id`
    # in code, an unquoted value is an expression (`password = cfg.password`); so is one passed
    # to a call in prose or config (a README's `login(user: user, password: password)`)
    expression = (
        not candidate.quoted
        and candidate.kind.startswith("unquoted")
        and (not config or _in_call(line, candidate.name_start))
    )
    if expression and _EXPRESSION.fullmatch(value) and not credential_shaped(value):
        return False
    return name_is_sure(candidate.name) or credential_shaped(value)


# Words joined as identifiers are: CamelCase (`ErrorDocument404Path`), or lower-case words joined
# by `-` or `_` (`opc-multipart-sha256`, `actions_sampled_t0_to_H_BxT`); digits end a word.
_IDENTIFIER = re.compile(
    r"[A-Za-z][a-z]+\d*(?:[A-Z][a-z]+\d*)+|[A-Za-z][a-z]*\d*(?:[-_][A-Za-z][A-Za-z]*\d*)+"
)
# The word "password" in other languages: a login form's label (gradio's translations).
_PASSWORD_WORDS = frozenset(
    {
        "passwort",
        "kennwort",
        "wachtwoord",
        "salasana",
        "hasło",
        "haslo",
        "heslo",
        "parol",
        "parola",
        "parolă",
        "parole",
        "parool",
        "contraseña",
        "contrasena",
        "contrasenya",
        "senha",
        "lösenord",
        "losenord",
        "passord",
        "adgangskode",
        "slaptažodis",
        "pasahitza",
        "jelszó",
        "lozinka",
        "geslo",
        "şifre",
        "sifre",
        "пароль",
        "密码",
        "密碼",
        "パスワード",
        "비밀번호",
        "סיסמה",
        "รหัสผ่าน",
    }
)
# A path to a key file, not a key: `/path/to/key.pem`, `~/.ssh/id_rsa`, `./secrets.json`.
_KEY_FILE = re.compile(
    r"(?:~|\.{1,2})?/[\w.@-]+(?:/[\w.@-]+)*/?|[\w.@/-]+\.(?:pem|key|crt|p12|pfx|json|ya?ml|txt)"
)
# Capitalized words ending as type names do (`SensitiveAttribute`); a passphrase of capitalized
# words (`CorrectHorseBatteryStaple`) is still a password.
_TYPE_NAME = re.compile(
    r"(?:[A-Z][a-z]+)+(?:Attribute|Type|Field|Model|Details|Enum|Class|Kind|Info|Spec|Schema|"
    r"String|Id)"
)
# A string literal that is one part of a `+` concatenation.
_CONCATENATED = re.compile(r"\s*\+")


def _squashed(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _basic_placeholder(value: str) -> bool:
    """Whether a Basic authorization value decodes to `user:password` whose password is a
    placeholder."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    _, colon, password = decoded.partition(":")
    return bool(colon) and _placeholder(password)


def _own_line(line: str, candidate: _Candidate) -> str:
    """The candidate's line (the region's line holding it, within 200 characters around it)."""
    start = max(line.rfind("\n", 0, candidate.start) + 1, candidate.name_start - 200)
    end = line.find("\n", candidate.end)
    return line[start : min(end if end >= 0 else len(line), candidate.end + 200)]


def _allowlisted(text: str, filename: str, line_start: int, line: str) -> bool:
    """detect-secrets' `pragma: allowlist secret` comment (on the line, or on the line above as
    `pragma: allowlist nextline secret`)."""
    previous_start = text.rfind("\n", 0, max(0, line_start - 1)) + 1
    previous = text[previous_start : max(0, line_start - 1)] if line_start else ""
    return is_line_allowlisted(filename, line, get_code_snippet([previous, line], 2))


# ---------------------------------------------------------------- the public functions

# Which finding names a span where two overlap: the most specific detector.
_PRIORITY = {
    "private key": 0,
    "basic auth credentials": 2,
    "quoted credential": 4,
    "unquoted credential": 4,
    "connection string credential": 5,
    "authorization header": 5,
}


def find_secrets(text: str, filename: str = "") -> list[Finding]:
    """Every credential in ``text`` (from a file named ``filename``, which picks detect-secrets'
    keyword rules: config files and prose accept unquoted values), as non-overlapping spans in
    order. Other occurrences of a found token (a value that is not just a keyword's, or one that
    looks generated) are found too."""
    if not text:
        return []
    whole_text, _ = token_detectors()
    found = [
        *_key_findings(text),
        *_token_findings(text, whole_text),
        *_url_findings(text),
        *_keyword_findings(text, os.fspath(filename)),
    ]
    if not found:
        return []
    found = _resolve(found)
    repeats = []
    for value, kind in {text[f.start : f.end]: f.kind for f in found}.items():
        if len(value) < 8 or "\n" in value or text.count(value) < 2:
            continue
        if _PRIORITY.get(kind, 1) >= 2 and not credential_shaped(value):
            # `password = "python"`, `postgres://postgres:postgres@db`: other "python"s and
            # "postgres"es in the file are not passwords
            continue
        for match in re.finditer(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text):
            repeats.append(Finding(match.start(), match.end(), kind))
    return _resolve(found + repeats) if repeats else found


def _resolve(found: list[Finding]) -> list[Finding]:
    """Overlapping findings become one span (their union) named by the most specific kind."""
    out: list[Finding] = []
    for finding in sorted(found):
        if finding.end <= finding.start:
            continue
        if out and finding.start < out[-1].end:
            last = out[-1]
            kind = min(last.kind, finding.kind, key=lambda k: _PRIORITY.get(k, 1))
            out[-1] = Finding(last.start, max(last.end, finding.end), kind)
        else:
            out.append(finding)
    return out


def redact(text: str, findings: Iterable[Finding], placeholder: str) -> str:
    """``text`` with every finding's span replaced by ``placeholder`` (overlaps merged, spans
    clipped to the text: any findings and any text are safe to pass)."""
    parts = []
    position = 0
    for finding in _resolve(list(findings)):
        start, end = max(finding.start, position, 0), min(finding.end, len(text))
        if start >= end:
            continue
        parts.append(text[position:start])
        parts.append(placeholder)
        position = end
    parts.append(text[position:])
    return "".join(parts)
