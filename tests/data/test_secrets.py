"""Secrets, measured like a detector: every planted kind found and redacted exactly, every
clean false-positive class left alone, no crash on keys or odd bytes, nothing redacted left in
any output of a real data stage."""

from __future__ import annotations

import json
import random
import re
import subprocess
import time
from collections import Counter

import pytest

from runner.data.example import Example
from runner.data.filters import secret_scan
from runner.data.filters.secret_scan import Finding, find_secrets, redact
from runner.data.filters.secrets import SecretsFilter
from runner.data.registries import FILTERS
from tests.helpers import options, recipe_of, run_stage, stage_context

from .secrets_corpus import CLEAN, PLANTED

PLACEHOLDER = "<REDACTED_SECRET>"


def redacted(text: str, filename: str) -> str:
    return redact(text, find_secrets(text, filename), PLACEHOLDER)


def test_the_planted_corpus_is_broad():
    kinds = {p.kind for p in PLANTED}
    assert len(kinds) == len(PLANTED) >= 30
    chat = [p for p in PLANTED if not p.filename]
    prose = [p for p in PLANTED if p.filename.endswith((".md", ".txt"))]
    config = [p for p in PLANTED if re.search(r"\.(env|ya?ml|json|ini|toml)$|rc$", p.filename)]
    assert len(chat) >= 3 and len(prose) >= 3 and len(config) >= 15


@pytest.mark.parametrize("planted", PLANTED, ids=[p.kind for p in PLANTED])
def test_planted_secret_is_redacted_exactly(planted):
    """kind -> sample -> exact redacted output: the credential and nothing else is replaced."""
    assert redacted(planted.text, planted.filename) == planted.redacted(PLACEHOLDER)


@pytest.mark.parametrize("planted", PLANTED, ids=[p.kind for p in PLANTED])
def test_planted_secret_is_gone_from_a_chat(planted):
    """Through the filter, in every turn, from a file of that name."""
    example = Example(
        id="x",
        source="s",
        messages=[
            {"role": "user", "content": "What does this do?\n" + planted.text},
            {"role": "assistant", "content": "It configures the service:\n" + planted.text},
        ],
        metadata={"path": planted.filename},
    )
    verdict = SecretsFilter(options(FILTERS, {"type": "secrets"})).filter(example)
    assert verdict is not None and verdict.action == "alter" and verdict.count >= 2
    for message in example.messages:
        assert planted.secret not in message["content"]
        assert message["content"].endswith(planted.redacted(PLACEHOLDER))


@pytest.mark.parametrize(("name", "filename", "text"), CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_code_is_left_alone(name, filename, text):
    assert find_secrets(text, filename) == []


# Values that do not look generated need a name that says "password": the same value under a
# name that only may hold one (`token`, `*_key`, `password_file`) is code.
NAMES = [
    ('password = "Winter24x"', "a.py", True),
    ('password = "Summer2024Fun"', "a.py", True),  # words with digits: not a type name
    ('password = "CorrectHorseBatteryStaple"', "a.py", True),  # a passphrase, not a type
    ("'password_secret': 'SensitiveAttribute'", "a.py", False),  # a type
    ("POSTGRES_PASSWORD=postgres", ".env", True),  # one word of its name, still a password
    ('DB_PASSWORD = "Winter24x"', "a.py", True),
    ('apiKey = "Winter24x"', "a.js", True),
    ('token = "Winter24x"', "a.py", False),
    ('sort_key = "Winter24x"', "a.py", False),
    ('password_file = "Winter24x"', "a.py", False),
    ('token = "q8Zr2Lx0VbN7mK3pT9wYc4Hd"', "a.py", True),
    ('sort_key = "q8Zr2Lx0VbN7mK3pT9wYc4Hd"', "a.py", True),
    ("password = cfg.db_password", "a.go", False),
    ("password = hunter2x", ".env", True),
    ("password = hunter2x", "a.py", False),
    ('user, password = "wile", "coyote"', "a.py", True),
    ("DATABASE_URL=postgres://app:hunter2@db.internal/app", ".env", True),
    ("DATABASE_URL=postgres://app:xxxx@db.internal/app", ".env", False),
    # in prose and config, a call's argument is code: a variable, unless it looks generated
    ("login(password: hunter2x)", "README.md", False),
    ("login(password: q8Zr2Lx0VbN7mK3pT9wYc4Hd)", "README.md", True),
    ("login(password=q8Zr2Lx0VbN7mK3pT9wYc4Hd, retries=3)", "README.md", True),
    ("{user: bob, password: hunter2x}", "README.md", True),
]


def test_a_call_argument_value_ends_at_its_comma_and_bracket():
    text = "f(password: q8Zr2Lx0VbN7mK3pT9wYc4Hd, user: u)\ng(token: q8Zr2Lx0VbN7mK3pT9wYc4Hd)\n"
    assert redacted(text, "README.md") == (
        f"f(password: {PLACEHOLDER}, user: u)\ng(token: {PLACEHOLDER})\n"
    )


@pytest.mark.parametrize(("text", "filename", "found"), NAMES)
def test_what_a_name_says(text, filename, found):
    assert bool(find_secrets(text, filename)) is found


def test_a_password_in_a_tuple_is_the_one_in_its_place():
    text = 'user, password = "wile", "coyote"\nhost, user, pwd = "db", "app", "s3cr3t-pw"\n'
    assert redacted(text, "a.py") == (
        f'user, password = "wile", "{PLACEHOLDER}"\nhost, user, pwd = "db", "app", "{PLACEHOLDER}"\n'
    )


def test_every_detect_secrets_plugin_is_used_or_skipped_on_purpose():
    """An upgrade of detect-secrets that adds a plugin fails here until it gets a gate."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    names = {cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()}
    handled = set(secret_scan.GATES) | set(secret_scan.KEYWORD_LINE_PATTERNS)
    assert names - handled - secret_scan.SKIPPED_PLUGINS == set()
    assert not handled & secret_scan.SKIPPED_PLUGINS


def test_private_key_blocks_cover_detect_secrets_headers():
    from detect_secrets.plugins.private_key import PrivateKeyDetector

    for pattern in PrivateKeyDetector.denylist:
        if pattern.pattern.startswith("BEGIN"):
            header = f"-----{pattern.pattern}-----"
            text = f"{header}\n{'QUJD' * 30}\n-----{pattern.pattern.replace('BEGIN', 'END')}-----"
            assert redacted(text, "key") == f"{header}\n{PLACEHOLDER}\n" + text.split("\n")[-1]


# A key without its END line (a sample cut at 1,500 characters), several keys, keys in escaped
# strings, and unbalanced markers: redacted as far as the key's armour goes, never a crash.
KEYS = [
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAAAA",
        "-----BEGIN PRIVATE KEY-----\n" + PLACEHOLDER,
    ),
    (
        '{"text": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAzd3PmUS0x7qv9\\nq7h"}',
        '{"text": "-----BEGIN RSA PRIVATE KEY-----\\n' + PLACEHOLDER + '"}',
    ),
    (
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAbcdefghijklmnopqrstu\n-----END EC PRIVATE KEY-----\n"
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIZyxwvutsrqponmlkjihgf\n-----END EC PRIVATE KEY-----",
        f"-----BEGIN EC PRIVATE KEY-----\n{PLACEHOLDER}\n-----END EC PRIVATE KEY-----\n"
        f"-----BEGIN EC PRIVATE KEY-----\n{PLACEHOLDER}\n-----END EC PRIVATE KEY-----",
    ),
    ("-----END RSA PRIVATE KEY-----\n-----BEGIN RSA PRIVATE KEY-----", None),
    ("-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----", None),
]


@pytest.mark.parametrize(("text", "expected"), KEYS)
def test_private_keys_in_any_shape(text, expected):
    assert redacted(text, "key.pem") == (text if expected is None else expected)


def test_odd_bytes_never_crash():
    """Random text with every kind of character, and fragments of secrets, markers, quotes and
    escapes thrown in: detection and redaction run, and every finding is inside the text."""
    rng = random.Random(7)
    pieces = [p.text for p in PLANTED] + [
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "PuTTY-User-Key-File-2",
        "Private-Lines: 3\n",
        'password = "',
        '\\"password\\": \\"',
        "://:@",
        "\x00\ud800\udfff\u202e\r\n\t\\",
        "İ" * 5,
        "key=" * 50,
        "a" * 3000,
    ]
    alphabet = [chr(c) for c in range(0, 0x250)] + ["\ud83d", "😀", "ﬃ"]
    for _ in range(300):
        text = "".join(
            rng.choice(pieces)
            if rng.random() < 0.3
            else "".join(rng.choices(alphabet, k=rng.randrange(40)))
            for _ in range(rng.randrange(1, 12))
        )
        filename = rng.choice(["", "a.py", ".env", "x.yaml", "k.pem", "a.go", "b.cpp"])
        findings = find_secrets(text, filename)
        assert all(0 <= f.start < f.end <= len(text) for f in findings)
        assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))
        redact(text, findings, PLACEHOLDER)


# Inputs on which a pattern or a step went quadratic or worse (seconds to minutes for these
# sizes before; well under a second each now): a data stage must not stall on one file.
HOSTILE = {
    "many BEGIN lines": "-----BEGIN RSA PRIVATE KEY-----\n" * 6000,
    "many BEGIN lines, one END": "-----BEGIN EC PRIVATE KEY-----\nQUJD\n" * 5000
    + "-----END EC PRIVATE KEY-----",
    "eyJ blob (JWT pattern)": "eyJ" * 100_000,
    "xoxb- run (Slack pattern)": "xoxb-1-" * 20_000,
    "task- run (OpenAI pattern)": "task-" * 60_000,
    "urls in one line (npm pattern)": "see https://a.b/c and " * 30_000,
    "password= in one line": 'password="' * 5_000,
    "minified code": 'var a={apiKey:"x",token:b.c,secret:d,u:"https://x.y/z"};' * 2_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_finishes(name):
    started = time.perf_counter()
    find_secrets(HOSTILE[name], "bundle.js")
    assert time.perf_counter() - started < 20


def test_detect_secrets_patterns_made_linear_are_still_its_own():
    """The possessive copies replace patterns detect-secrets still ships (an upgrade that
    changes them shows here)."""
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.slack import SlackDetector

    shipped = {p.pattern for p in (*JwtTokenDetector.denylist, *SlackDetector.denylist)}
    assert set(secret_scan.LINEAR_PATTERNS) <= shipped


NAME_PATTERNS = ("NOUN_QUOTED", "NOUN_BARE", "TYPED")
# Names inside longer words, at the start of a text or a cut window, unicode word characters,
# values ending the text: where a match starting only at a word's start could differ.
NAMES_IN_WORDS = [
    "mytokentoken_key = 'abcdefgh12345678'",
    'xx_password: str = "hunter2hunter2"',
    "apikey_token=abc123def456; other_secret_key: 'zz9zz9zz9zz9'",
    "éauth_token = 'Zm9vYmFyYmF6cXV4MTIz'  ñsession_key: \"q1w2e3r4t5y6\"",
    "token='a'token='b'password='c'",
    'dbpassword:Optional[str]="s3cr3tpassw0rd"',
    "__init__(self, signing_key: bytes = b'abc', auth: str = 'x')",
    "GITHUB_TOKEN=ghp_abc123def456ghi789jkl0mno1pqr2stu3vw\nFOO_KEY: barbazqux1234",
    "passwordpasswordpassword = 'aaaa1111bbbb2222'",
    "keykeykeykeykeykeykeykey_token: int = '1'" * 3,
]


@pytest.mark.parametrize("name", NAME_PATTERNS)
def test_names_start_at_a_word_start_with_the_same_matches(name):
    """The keyword patterns try a name only at a word's start (``_NAME_START``, a speed-up):
    they match exactly what the patterns without that guard match, on tricky lines, the
    planted and clean corpora and real standard-library files."""
    import sysconfig
    from pathlib import Path

    pattern = getattr(secret_scan, name)
    unguarded = re.compile(pattern.pattern.replace(secret_scan._NAME_START, "", 1), pattern.flags)
    assert unguarded.pattern != pattern.pattern
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))[::7]
    texts = [
        *NAMES_IN_WORDS,
        *(p.text for p in PLANTED),
        *(text for _, _, text in CLEAN),
        *(f.read_text(encoding="utf-8", errors="replace") for f in files),
    ]
    for text in texts:
        lower = text.lower()
        for start, end in [(0, len(text)), *secret_scan._keyword_lines(text, lower)]:
            line = text[start:end]
            found = [(m.span(), m.groupdict()) for m in pattern.finditer(line)]
            assert found == [(m.span(), m.groupdict()) for m in unguarded.finditer(line)], line
    assert any(pattern.search(line) for line in NAMES_IN_WORDS)


def test_redact_merges_and_clips():
    text = "0123456789"
    findings = [Finding(2, 5, "a"), Finding(4, 7, "b"), Finding(8, 99, "c"), Finding(-3, 1, "d")]
    assert redact(text, findings, "#") == "#1#7#"
    assert redact("", findings, "#") == ""


def test_another_occurrence_of_a_token_is_redacted_too():
    token = PLANTED[0].secret
    text = f'AWS_ACCESS_KEY_ID = "{token}"\nprint("using", "{token}")\n'
    assert token not in redacted(text, "a.py")
    # nor a URL's: "postgres" stays where it is not the password
    text = 'URL = "postgresql://postgres:postgres@localhost/db"\nif "postgres" in name:\n'
    assert redacted(text, "test_sql.py") == (
        f'URL = "postgresql://postgres:{PLACEHOLDER}@localhost/db"\nif "postgres" in name:\n'
    )
    # a keyword's weak value is not chased through the file: "python" stays elsewhere
    text = 'zip.setpassword(b"x")\npwd = "python"\nrun("python")\n'
    assert (
        redacted(text, "a.py") == f'zip.setpassword(b"x")\npwd = "{PLACEHOLDER}"\nrun("python")\n'
    )


def test_report_samples_stay_json():
    """The data stage's report samples go through ``redact_value`` string by string: a cut
    private key and a password in the sample's text are redacted, the structure is kept."""
    key = next(p for p in PLANTED if p.kind == "rsa private key")
    code = next(p for p in PLANTED if p.kind == "password keyword argument")
    sample = {"text": (code.text + key.text)[:1500], "meta": {"path": "db.py"}}
    filt = SecretsFilter(options(FILTERS, {"type": "secrets"}))
    out = filt.redact_value(sample, "sample.json")
    assert out["meta"] == {"path": "db.py"}
    assert code.secret not in out["text"] and key.secret[:100] not in out["text"]
    found: Counter[str] = Counter()
    filt.redact(sample["text"], "db.py", found)
    assert found == {"private key": 1, "quoted credential": 1}


def test_data_stage_outputs_hold_no_planted_secret(tmp_path):
    """A real data stage over a repository holding every planted secret (a private key file
    among them): it finishes, and no secret is in the splits, rejected.jsonl, the report or the
    stage's log."""
    repo = tmp_path / "repo"
    for index, planted in enumerate(PLANTED):
        path = repo / f"case{index:02d}" / (planted.filename or "chat.md")
        path.parent.mkdir(parents=True)
        path.write_text(planted.text, encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)  # git lists the files: a log
    recipe = recipe_of(
        {
            "sources": [{"type": "repo", "name": "planted", "path": str(repo)}],
            "filters": [{"type": "secrets"}],
            "split": {"train": 0.8, "val": 0.1, "test": 0.1, "group_by": "none"},
        },
        tmp_path,
    )
    from runner.data.build import run

    ctx = stage_context(tmp_path / "run", "data")
    outcome = run_stage(run, recipe, ctx)
    outputs = [ctx.out / name for name in ("train.jsonl", "val.jsonl", "test.jsonl")]
    outputs += [ctx.out / "rejected.jsonl", ctx.out / "report.json", ctx.out / "report.md"]
    outputs.append(ctx.log_file)
    texts = {path.name: path.read_text(encoding="utf-8") for path in outputs}
    report = json.loads(texts["report.json"])
    written = sum(report["split"]["written"].values())
    assert written >= len(PLANTED) - 5, outcome.summary  # a few files are skipped by policy
    assert PLACEHOLDER in texts["train.jsonl"] and "samples" in report
    for planted in PLANTED:
        for line in planted.secret.split("\n"):  # each line of a key on its own
            fragment = line[:40] if len(line) >= 12 else planted.secret
            for name, text in texts.items():
                assert fragment not in text and json.dumps(fragment)[1:-1] not in text, (
                    planted.kind,
                    name,
                )
