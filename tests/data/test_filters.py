"""Every filter: input -> exact verdict (tables), dedupe state, and planted-secret redaction."""

from __future__ import annotations

import re

import pytest

from runner.data.example import Example
from runner.data.registries import FILTERS, load_all
from tests.helpers import options

load_all()


def chat(user, assistant, **meta):
    return Example(
        id=meta.pop("id", "e"),
        source="s",
        messages=[{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        metadata=meta,
    )


def verdict(spec, example, tokens=None):
    result = FILTERS.get(spec["type"])(options(FILTERS, spec), tokens).filter(example)
    return None if result is None else (result.action, result.reason, result.detail)


ZIG_OK = "fn add(a: i32, b: i32) i32 {\n    return a + b;\n}"
ZIG_BAD = "fn add(a: i32, b: i32 i32 {\n    return a + b;\n}"

CASES = [
    # length
    (
        {"type": "length", "min_chars": 10},
        chat("hi", "yo"),
        ("drop", "below min_chars", "all: 5 < 10 chars"),
    ),
    (
        {"type": "length", "max_chars": 3, "field": "response"},
        chat("hi", "yoyo"),
        ("drop", "above max_chars", "response: 4 > 3 chars"),
    ),
    ({"type": "length", "min_chars": 1, "max_chars": 100}, chat("hi", "yo"), None),
    # keywords
    ({"type": "keywords", "include": ["FastAPI"]}, chat("use fastapi", "ok"), None),
    (
        {"type": "keywords", "include": ["FastAPI"], "case_sensitive": True},
        chat("use fastapi", "ok"),
        ("drop", "no include keyword", "mentions none of ['FastAPI']"),
    ),
    (
        {"type": "keywords", "exclude": ["TODO"]},
        chat("x", "# todo later"),
        ("drop", "exclude keyword", "mentions 'TODO'"),
    ),
    # regex
    (
        {"type": "regex", "forbid": [r"@intToFloat\("]},
        chat("q", "const x = @intToFloat(f32, a);"),
        (
            "drop",
            "forbidden pattern",
            "response matches /@intToFloat\\(/ at line 1: '@intToFloat('",
        ),
    ),
    (
        {"type": "regex", "forbid": [r"throw new Error\("]},
        chat("throw new Error(", "return failure(e);"),
        None,
    ),
    (
        {"type": "regex", "require": [r"from '@qi/base'"]},
        chat("q", "const x = 1;"),
        ("drop", "required pattern missing", "response lacks /from '@qi/base'/"),
    ),
    ({"type": "regex", "field": "all", "require": ["^q$"]}, chat("q", "a"), None),
    # syntax
    ({"type": "syntax", "language": "zig"}, chat("q", ZIG_OK), None),
    (
        {"type": "syntax", "language": "zig"},
        chat("q", ZIG_BAD),
        ("drop", "syntax error", "zig: missing ')' at line 1"),
    ),
    (
        {"type": "syntax"},
        chat("q", f"Here:\n```zig\n{ZIG_BAD}\n```"),
        ("drop", "syntax error", "zig: missing ')' at line 1"),
    ),
    # Prose is not Zig (the pack's own Zig grammar took it for container fields).
    (
        {"type": "syntax", "language": "zig"},
        chat("q", "I think so"),
        ("drop", "syntax error", "zig: parse error at line 1: 'I think so'"),
    ),
    (
        {"type": "syntax"},
        chat("q", "```go\nfunc add(a int, b int) int {\n\treturn a +\n}\n```"),
        ("drop", "syntax error", "go: parse error at line 2: 'return a +'"),
    ),
    ({"type": "syntax", "language": "kotlin"}, chat("q", "fun add(a: Int) = a + 1"), None),
    (
        {"type": "syntax"},
        chat("q", "def f(:\n  pass", language="python"),
        ("drop", "syntax error", "python: missing ')' at line 1"),
    ),
    (
        {"type": "syntax", "language": "python"},
        chat("q", "x = = 1"),
        ("drop", "syntax error", "python: parse error at line 1: 'x = = 1'"),
    ),
    (
        {"type": "syntax"},
        chat("q", "plain words", response_format="text"),
        ("note", "not checked", "no code in a language with a grammar"),
    ),
    ({"type": "syntax"}, chat("q", "half a unit {", language="rust", parses=True), None),
    (
        {"type": "syntax"},
        chat("q", "x", language="rust", parses=False),
        ("drop", "syntax error", "rust: the source unit does not parse"),
    ),
    (
        {"type": "syntax", "field": "code_blocks"},
        chat("```python\ndef f(:\n```", "ok"),
        ("drop", "syntax error", "python: missing ')' at line 1"),
    ),
    # quality
    (
        {"type": "quality", "field": "score", "min": 0.7},
        chat("q", "a", score=0.5),
        ("drop", "below min score", "score=0.5 < 0.7"),
    ),
    (
        {"type": "quality", "field": "score", "max": 0.9},
        chat("q", "a", score=0.95),
        ("drop", "above max score", "score=0.95 > 0.9"),
    ),
    (
        {"type": "quality", "field": "score", "min": 0.7},
        chat("q", "a"),
        ("drop", "missing score", "no 'score' in metadata"),
    ),
    ({"type": "quality", "field": "score", "min": 0.7, "missing": "keep"}, chat("q", "a"), None),
    (
        {"type": "quality", "field": "score", "min": 0.7},
        chat("q", "a", score="high"),
        ("drop", "score not a number", "score='high'"),
    ),
    # metadata
    (
        {"type": "metadata", "field": "version", "equals": "0.15.0"},
        chat("q", "a", version="0.13.0"),
        ("drop", "metadata mismatch", "version='0.13.0', wanted '0.15.0'"),
    ),
    (
        {"type": "metadata", "field": "difficulty", "in": ["easy", "medium"]},
        chat("q", "a", difficulty="hard"),
        ("drop", "metadata mismatch", "difficulty='hard' not in ['easy', 'medium']"),
    ),
    (
        {"type": "metadata", "field": "difficulty", "not_in": ["hard"]},
        chat("q", "a", difficulty="easy"),
        None,
    ),
    (
        {"type": "metadata", "field": "topic", "equals": "x"},
        chat("q", "a"),
        ("drop", "missing metadata field", "no 'topic' in metadata"),
    ),
    # emails
    (
        {"type": "emails"},
        chat("mail ana.lopez@example.org", "ok"),
        ("alter", "redacted email", "1 address(es)"),
    ),
    ({"type": "emails", "allow": ["example.org"]}, chat("mail ana.lopez@example.org", "ok"), None),
    # secrets
    (
        {"type": "secrets"},
        chat("q", 'password = "hunter2xyz"'),
        ("alter", "redacted secret", "1 quoted credential"),
    ),
    (
        {"type": "secrets", "action": "drop"},
        # not AWS's documented AKIAIOSFODNN7EXAMPLE, which is an example, left alone
        chat("q", "key AKIA" + "Q3EGRT7KXJ2MV5NB"),
        ("drop", "contains secret", "1 aws access key"),
    ),
    ({"type": "secrets"}, chat("q", "password = get_password()\ntokens = tokenize(src)"), None),
]


@pytest.mark.parametrize(
    ("spec", "example", "expected"), CASES, ids=[f"{i}-{c[0]['type']}" for i, c in enumerate(CASES)]
)
def test_filter_table(spec, example, expected):
    assert verdict(spec, example) == expected


def test_length_in_tokens(tokens):
    spec = {"type": "length", "max_tokens": 3, "field": "response"}
    text = "def add(a, b): return a + b"
    count = tokens.count(text)
    assert verdict(spec, chat("q", text), tokens) == (
        "drop",
        "above max_tokens",
        f"response: {count} > 3 tokens",
    )


@pytest.mark.parametrize(
    "variant",
    [
        "def f(x):\n    return x",
        "  def f(x):\n\treturn   x\n\n",
        "def\u3000f(x):\u00a0return\x1cx\u2028",  # Unicode blanks are whitespace too
        "def f(x): return x",
    ],
)
def test_normalised_hash_collapses_every_kind_of_whitespace(variant):
    """As ``re.sub(r"\\s+", " ", text).strip()`` did: ``\\s`` is what ``str.split()`` splits at."""
    import re

    from runner.data.filters.dedupe import normalised_hash

    assert normalised_hash(variant) == normalised_hash("def f(x): return x")
    assert re.sub(r"\s+", " ", variant).strip() == "def f(x): return x"
    assert normalised_hash(variant.replace("x", "y")) != normalised_hash(variant)


def test_exact_dedupe_normalises_whitespace():
    dedupe = FILTERS.get("exact_dedupe")(options(FILTERS, {"type": "exact_dedupe"}))
    first, again = chat("q", "x = 1", id="a"), chat("q", "x  =   1\n", id="b")
    assert dedupe.check(dedupe.key(first), first) is None
    result = dedupe.check(dedupe.key(again), again)
    assert (result.reason, result.detail) == ("exact duplicate", "same text as a")


def test_near_dedupe_catches_small_edits_only():
    words = " ".join(f"word{i}" for i in range(200))
    near = FILTERS.get("near_dedupe")(options(FILTERS, {"type": "near_dedupe", "threshold": 0.8}))
    base, edited = chat("q", words, id="a"), chat("q", words.replace("word100", "changed"), id="b")
    other = chat("q", " ".join(f"other{i}" for i in range(200)), id="c")
    assert near.check(near.key(base), base) is None
    result = near.check(near.key(edited), edited)
    assert result.reason == "near duplicate"
    # 5 of 196 shingles differ: a true Jaccard of 191/201 = 0.95, estimated from 128 hashes.
    found = re.fullmatch(r"estimated Jaccard (0\.\d\d) >= 0\.8 with a", result.detail)
    assert found and 0.9 <= float(found.group(1)) <= 1.0, result.detail
    assert near.check(near.key(other), other) is None


def test_lsh_candidate_below_the_threshold_is_not_a_near_duplicate():
    """LSH proposes any pair that agrees on one band; the estimated Jaccard decides."""
    import numpy as np

    from runner.data.minhash import NearIndex

    index = NearIndex(0.85, 128)
    rows = index.rows  # hash values per band
    first = np.arange(1, 129, dtype=np.uint64) * 7919
    second = first + 1  # every hash value differs...
    second[:rows] = first[:rows]  # ...but the first band is equal
    index.add("a", first)
    assert "a" in index.candidates(second)  # LSH proposes it
    assert index.match(second) is None  # estimated Jaccard rows/128 < 0.85
    assert index.rejected_candidates == 1
    assert index.match(first.copy()) == ("a", 1.0)


# Every planted secret must disappear; the placeholder must appear once per secret.
PLANTED = {
    "private key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAzd3PmUS0x7qv9\nq7hW0B3kz1Ue6Yd+\n-----END RSA PRIVATE KEY-----",
    "openssh key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----",
    "aws": 'aws_access_key_id = "AKIAQWERTYUIOPASDFGH"',
    "github": "GH_TOKEN: ghp_Zx9Y8w7V6u5T4s3R2q1P0o9N8m7L6k5J4i3H",
    "slack": "url = 'xoxb-2048193710-1029384756123-AbCdEfGhIjKlMnOpQrStUvWx'",
    "stripe": 'const key = "sk_live_51HqLyjWDarjtT1zdp7dcXyZ"',
    "google": "maps_key = AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "openai": "OPENAI_API_KEY=sk-proj-Abc123Def456Ghi789Jkl012Mno345",
    "hf": "token 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",
    "jwt": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "url": "DATABASE_URL=postgres://app:Sup3r-Secr3t@db.internal:5432/app",
    "env password": "DB_PASSWORD=correcthorsebattery",
    "yaml secret": "  client_secret: 7f3d9a2b1c8e4f60",
    "quoted": 'self.password = "Tr0ub4dor&3"',
    "entropy": "signing = 'q8Zr2Lx0VbN7mK3pT9wYc4Hd6Fj1Gs5Ua'",
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_secret_is_redacted(name):
    line = PLANTED[name]
    example = chat("config:\n" + line, "see above: " + line)
    result = FILTERS.get("secrets")(options(FILTERS, {"type": "secrets"})).filter(example)
    assert result is not None and result.action == "alter"
    secret_part = line.split("\n")[1] if "PRIVATE KEY" in line else line
    for message in example.messages:
        assert "<REDACTED_SECRET>" in message["content"]
        for token in (
            secret_part.replace("=", " ")
            .replace(":", " ")
            .replace('"', " ")
            .replace("'", " ")
            .split()
        ):
            if (
                len(token) >= 12
                and any(c.isdigit() for c in token)
                and token not in ("Authorization",)
            ):
                assert token not in message["content"], f"{token} survived"


def test_planted_secrets_fixture_all_at_once():
    """One file holding every planted secret: all redacted, each counted."""
    text = "\n".join(PLANTED.values())
    example = Example(id="f", source="s", text=text, metadata={"path": "settings.env"})
    secrets = FILTERS.get("secrets")(options(FILTERS, {"type": "secrets", "placeholder": "[X]"}))
    result = secrets.filter(example)
    assert result.action == "alter" and result.count >= len(PLANTED)
    for secret in (
        "MIIEowIBAAKCAQEAzd3PmUS0x7qv9",
        "AKIAQWERTYUIOPASDFGH",
        "Sup3r-Secr3t",
        "correcthorsebattery",
        "7f3d9a2b1c8e4f60",
        "Tr0ub4dor&3",
        "sk_live_51HqLyj",
        "q8Zr2Lx0VbN7mK3pT9wYc4Hd6Fj1Gs5Ua",
        "hf_QwErTyUiOp",
        "xoxb-2048193710",
        "AIzaSyD-9tSrke72",
    ):
        assert secret not in example.text
