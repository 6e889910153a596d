"""Every check type on small answers whose verdict is known."""

from __future__ import annotations

import pytest

from runner.eval.checks import CHECKS, Sample, build_checks
from runner.eval.codeblocks import code_blocks, extract_code
from runner.recipe.problems import RecipeErrors
from tests.helpers import options, recipe_of

ZIG_OK = """Here it is:

```zig
const std = @import("std");

pub fn main() void {
    std.debug.print("hello {d}\\n", .{42});
}
```
"""

ZIG_BROKEN = """```zig
pub fn main() void {
    const x = ;
}
```
"""


def sample(answer: str, reference: str = "", finish: str = "stop", **meta) -> Sample:
    return Sample("t1", [{"role": "user", "content": "q"}], reference, answer, finish, meta)


def check(spec: dict, answer: str, **kwargs):
    checks = build_checks([options(CHECKS, spec)], allow_commands=False)
    return checks.run(sample(answer, **kwargs))[checks.labels[0]]


def test_every_registered_check_type_is_in_the_schema():
    from runner.recipe.schema import json_schema

    schema = json_schema()
    items = schema["$defs"]["EvalSection"]["properties"]["checks"]["items"]
    assert sorted(items["discriminator"]["mapping"]) == sorted(CHECKS.names())


@pytest.mark.parametrize(
    ("spec", "answer", "passed", "reason"),
    [
        ({"type": "syntax"}, ZIG_OK, True, "1 block(s) parse (zig)"),
        (
            {"type": "syntax"},
            ZIG_BROKEN,
            False,
            "block 1: zig: parse error at line 2: 'const x = ;'",
        ),
        ({"type": "syntax", "language": "zig"}, ZIG_OK, True, "1 block(s) parse (zig)"),
        (
            {"type": "syntax", "language": "zig"},
            "```python\nx = 1\n```",
            False,
            "no zig code to parse",
        ),
        (
            {"type": "syntax"},
            "```python\ndef f(:\n    pass\n```",
            False,
            "block 1: python: missing ')' at line 1",
        ),
        (
            {"type": "syntax"},
            "```rs\nfn main() { let x = 1; }\n```",
            True,
            "1 block(s) parse (rust)",
        ),
        (
            {"type": "syntax"},
            "```ts\nlet x: number = 1;\n```",
            True,
            "1 block(s) parse (typescript)",
        ),
        (
            {"type": "syntax"},
            "```js\nlet x = {;\n```",
            False,
            "block 1: javascript: missing '}' at line 1",
        ),
        # Every grammar of tree-sitter-language-pack: Go, Elixir, Kotlin, bash...
        ({"type": "syntax"}, "```bash\nls -la\n```", True, "1 block(s) parse (bash)"),
        (
            {"type": "syntax"},
            "```golang\nfunc add(a int, b int) int {\n\treturn a + b\n}\n```",
            True,
            "1 block(s) parse (go)",
        ),
        (
            {"type": "syntax"},
            "```elixir\ndef add(a, b) do\n  a + \nend\n```",
            False,
            "block 1: elixir: missing 'end' at line 4",
        ),
        (
            {"type": "syntax"},
            "```rescript\nlet add = (a, b) => a + b\n```",
            False,
            "no code to parse (language: rescript)",
        ),
        ({"type": "syntax"}, "just words", False, "no code to parse (language: unknown)"),
        (
            {"type": "forbid", "patterns": [r"\busingnamespace\b", "std\\.mem\\.copy\\("]},
            "const a = 1;\nstd.mem.copy(u8, a, b);",
            False,
            "forbidden /std\\.mem\\.copy\\(/ matched 'std.mem.copy(' at line 2",
        ),
        (
            {"type": "forbid", "patterns": [r"\busingnamespace\b", "std\\.mem\\.copy\\("]},
            "@memcpy(a, b);",
            True,
            "none of 2 forbidden pattern(s) found",
        ),
        (
            {"type": "require", "patterns": ["^pub fn", "try "]},
            "pub fn main() !void {}",
            False,
            "required pattern(s) missing: /try /",
        ),
        (
            {"type": "require", "patterns": ["^pub fn"]},
            "x\npub fn main() void {}",
            True,
            "all 1 required pattern(s) found",
        ),
        ({"type": "stops"}, "done", True, "ended on an end token"),
    ],
)
def test_check_verdicts(spec, answer, passed, reason):
    result = check(spec, answer)
    assert (result.passed, result.reason) == (passed, reason)


def test_untagged_block_uses_example_language():
    result = check({"type": "syntax"}, "```\nconst x = ;\n```", language="zig")
    assert not result.passed and "zig: parse error" in result.reason


@pytest.mark.parametrize(
    ("spec", "answer", "reference", "passed"),
    [
        ({"type": "exact"}, "a  b\n", "a b", True),
        ({"type": "exact", "normalize_whitespace": False}, "a  b", "a b", False),
        ({"type": "exact"}, "a c", "a b", False),
        ({"type": "contains"}, "x = 1\nreturn   x", "return x", True),
        ({"type": "contains"}, "x = 1", "return x", False),
        ({"type": "contains", "text": "defer"}, "defer f.close();", "unused", True),
        (
            {"type": "similarity", "min": 0.8},
            "pub fn add(a: i32) i32",
            "pub fn add(a: i32) i32 ",
            True,
        ),
        (
            {"type": "similarity", "min": 0.8},
            "completely different",
            "pub fn add(a: i32) i32",
            False,
        ),
    ],
)
def test_reference_checks(spec, answer, reference, passed):
    assert check(spec, answer, reference=reference).passed is passed


def test_stops_fails_on_token_limit():
    result = check({"type": "stops"}, "and so on and so on", finish="length")
    assert not result.passed and "'length'" in result.reason


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            {"type": "regex", "forbid": ["("]},
            "eval.checks[0].forbid[0]: '(' is not a valid regular expression",
        ),
        (
            {"type": "forbid", "patterns": ["("]},
            "eval.checks[0].patterns[0]: '(' is not a valid regular expression",
        ),
        (
            {"type": "syntax", "language": "rescript"},
            "eval.checks[0].language: language 'rescript' has no grammar",
        ),
        ({"type": "syntaxx"}, "eval.checks[0].type: 'syntaxx' is not a known check; did you mean"),
    ],
)
def test_bad_checks_are_recipe_errors(tmp_path, check, message):
    with pytest.raises(RecipeErrors) as caught:
        recipe_of({"eval": {"checks": [check]}}, tmp_path)
    assert message in str(caught.value)


def test_two_checks_of_one_type_get_distinct_labels():
    specs = [{"type": "regex", "forbid": ["a"]}, {"type": "regex", "require": ["b"]}]
    checks = build_checks([options(CHECKS, s) for s in specs], allow_commands=False)
    assert checks.labels == ["regex", "regex#2"]


def test_the_regex_check_uses_the_regex_filter_words():
    spec = {"type": "regex", "forbid": [r"\busingnamespace\b"], "require": ["^pub fn"]}
    assert check(spec, "pub fn f() void {}").passed
    failed = check(spec, "usingnamespace std;\npub fn f() void {}")
    assert not failed.passed and "forbidden /\\busingnamespace\\b/" in failed.reason
    assert "required pattern(s) missing: /^pub fn/" in check(spec, "fn f() void {}").reason


def test_code_blocks_and_extraction():
    text = "intro\n```Python\nx = 1\n```\nmid\n~~~zig\nconst a = 1;\n~~~\n```\nuntagged\n"
    blocks = code_blocks(text)
    assert [(b.language, b.code, b.closed) for b in blocks] == [
        ("python", "x = 1\n", True),
        ("zig", "const a = 1;\n", True),
        (None, "untagged\n", False),
    ]
    assert extract_code(text, "zig") == "const a = 1;\n\nuntagged\n"
    assert extract_code("no fences", "zig") == "no fences"
