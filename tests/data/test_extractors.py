"""Extractors on small real files in each language; chunking never loses a character."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runner.data.example import Example
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS, load_all
from runner.data.tokenizer import chunk_text
from tests.helpers import options

load_all()

PYTHON = '''import os


def add(a, b):
    """Add two numbers and return their sum, an int or a float."""
    return a + b


def sub(a, b):
    return a - b
'''

ZIG = """const std = @import("std");

/// Divide a by b; fails with DivisionByZero when b is zero.
pub fn divide(a: f32, b: f32) !f32 {
    if (b == 0) return error.DivisionByZero;
    return a / b;
}
"""

TS = """/** Validate a price: a positive number of cents, below a million. */
export const validatePrice = (price: number): boolean => {
  return price > 0;
};
"""

RUST = """/// Creates a payment of the given amount and returns its id.
pub fn create(amount: u64) -> u64 {
    amount
}
"""


def doc(text, language, path):
    return Example(
        id="d",
        source="s",
        text=text,
        metadata={"source_file": path, "path": path, "language": language},
    )


def run(kind, document, tokens, spec=None, max_unit_tokens=1024):
    extractor = EXTRACTORS.get(kind)(
        options(EXTRACTORS, {"type": kind, **(spec or {})}),
        SimpleNamespace(max_unit_tokens=max_unit_tokens),
        tokens,
    )
    items = list(extractor.extract(document))
    return (
        [i for i in items if isinstance(i, Example)],
        [i for i in items if isinstance(i, Rejection)],
    )


def test_explain_code_python(tokens):
    examples, [rejected] = run("explain_code", doc(PYTHON, "python", "m.py"), tokens)
    [example] = examples
    user, answer = example.messages[0]["content"], example.messages[1]["content"]
    assert user.startswith("Explain what the following python code from `m.py` does.")
    assert "def add(a, b):\n    return a + b" in user and "Add two numbers" not in user
    assert answer == "Add two numbers and return their sum, an int or a float."
    assert example.metadata["unit"] == "add" and example.metadata["parses"] is True
    assert (rejected.reason, rejected.detail, rejected.line) == (
        "no documentation",
        "function 'sub' has no docstring or doc comment",
        9,
    )


@pytest.mark.parametrize(
    ("text", "language", "name", "doc_text"),
    [
        (ZIG, "zig", "divide", "Divide a by b; fails with DivisionByZero when b is zero."),
        (
            TS,
            "typescript",
            "validatePrice",
            "Validate a price: a positive number of cents, below a million.",
        ),
        (RUST, "rust", "create", "Creates a payment of the given amount and returns its id."),
    ],
)
def test_explain_code_doc_comments(tokens, text, language, name, doc_text):
    [example], [] = run("explain_code", doc(text, language, f"f.{language}"), tokens)
    assert example.metadata["unit"] == name
    assert example.messages[1]["content"] == doc_text


def test_document_code_answers_with_doc_as_written(tokens):
    [example], _ = run("document_code", doc(ZIG, "zig", "m.zig"), tokens)
    assert example.messages[1]["content"] == (
        "```zig\n/// Divide a by b; fails with DivisionByZero when b is zero.\n```"
    )
    assert "/// Divide" not in example.messages[0]["content"]


def test_implement_from_docstring(tokens):
    [example], _ = run("implement_from_docstring", doc(PYTHON, "python", "m.py"), tokens)
    assert example.messages[0]["content"] == (
        "Implement `add` in python as documented:\n\n```python\ndef add(a, b):\n"
        '    """Add two numbers and return their sum, an int or a float."""\n```'
    )
    assert example.messages[1]["content"] == (
        '```python\ndef add(a, b):\n    """Add two numbers and return their sum, an int or a float."""'
        "\n    return a + b\n```"
    )


def test_complete_code_splits_units(tokens):
    examples, [] = run("complete_code", doc(PYTHON, "python", "m.py"), tokens, {"split_at": 0.5})
    assert [e.metadata["unit"] for e in examples] == ["add", "sub"]
    first = examples[0]
    assert first.messages[0]["content"].endswith(
        '```python\ndef add(a, b):\n    """Add two numbers and return their sum, an int or a float."""'
        "\n```"
    )
    assert first.messages[1]["content"] == "```python\n    return a + b\n```"


def test_unit_over_token_limit_is_rejected_not_truncated(tokens):
    body = "\n".join(f"    x{i} = {i} * {i}" for i in range(200))
    text = f'def long():\n    """Long, to be cut: two hundred lines of arithmetic."""\n{body}\n'
    [], [rejected] = run("explain_code", doc(text, "python", "l.py"), tokens, max_unit_tokens=64)
    assert rejected.reason == "unit over max_unit_tokens"
    assert rejected.detail.startswith("function 'long' is ") and rejected.detail.endswith(
        "tokens > 64; a explain_code task cannot be chunked"
    )


def test_file_completion_chunks_at_unit_boundaries(tokens):
    text = "\n\n".join(f"def f{i}(x):\n    return x + {i} * {i} - {i}\n" for i in range(30))
    examples, [] = run("file_completion", doc(text, "python", "big.py"), tokens, max_unit_tokens=64)
    assert len(examples) > 3
    parts = [
        e.messages[1]["content"].removeprefix("```python\n").removesuffix("\n```") for e in examples
    ]
    assert all(tokens.count(p) <= 64 for p in parts)
    assert all(p.lstrip().startswith("def ") for p in parts)  # cut where units start
    assert examples[0].messages[0]["content"] == (
        f"Write the python file `big.py`. (part 1 of {len(examples)})"
    )
    assert "".join(p + "\n" for p in parts).replace("\n", "") == text.replace("\n", "")


def test_chunk_text_keeps_every_character(tokens):
    text = "one line that is very long " * 200 + "\nshort\n" * 5
    pieces = chunk_text(text, 50, tokens)
    assert "".join(pieces) == text
    assert all(tokens.count(p) <= 52 for p in pieces)  # +2: BPE merges across a cut


def test_docs_qa():
    document = Example(
        id="d",
        source="s",
        text="Run pip install.",
        metadata={
            "title": "Install",
            "heading_path": "Guide > Install",
            "path": "g.md",
            "source_file": "g.md",
        },
    )
    [example], [] = run("docs_qa", document, None, {"instruction": "How do I: {heading_path}?"})
    assert example.messages == [
        {"role": "user", "content": "How do I: Guide > Install?"},
        {"role": "assistant", "content": "Run pip install."},
    ]
    assert example.metadata["response_format"] == "text"


ZIG_40 = "\n".join(f"    const x{i} = a * {i};" for i in range(40))


@pytest.mark.parametrize(
    ("comment", "reason", "detail"),
    [
        # A real Zig code base answered a 40-line function's explanation with this alone.
        ("/// Caller owns returned memory.", "documentation too short", "4 words < 8"),
        (
            "// Copyright 2021 ACME Corp. Licensed under the MIT License; see LICENSE.",
            "not a description",
            "a licence or copyright notice",
        ),
        (
            "// TODO: explain the scaling factor and the overflow behaviour here",
            "not a description",
            "a TODO note",
        ),
    ],
)
def test_documentation_that_does_not_describe_is_no_answer(tokens, comment, reason, detail):
    text = f"{comment}\npub fn scale(a: i32) i32 {{\n{ZIG_40}\n    return a;\n}}\n"
    for kind in ("explain_code", "document_code", "implement_from_docstring"):
        [], [rejected] = run(kind, doc(text, "zig", "s.zig"), tokens)
        assert (rejected.reason, rejected.detail, rejected.line) == (
            reason,
            f"function 'scale': {detail}",
            2,
        )


def test_minimum_is_an_option(tokens):
    text = f"/// Caller owns returned memory.\npub fn scale(a: i32) i32 {{\n{ZIG_40}\n}}\n"
    [example], [] = run("explain_code", doc(text, "zig", "s.zig"), tokens, {"min_answer_words": 4})
    assert example.messages[1]["content"] == "Caller owns returned memory."
    [], [short] = run(
        "implement_from_docstring", doc(text, "zig", "s.zig"), tokens, {"min_doc_words": 5}
    )
    assert short.detail == "function 'scale': 4 words < 5"


RESCRIPT = """let add = (a, b) => {
  a + b
}

let greet = name => {
  let text = "Hello " ++ name
  Js.log(text)
}
"""


def test_a_file_without_grammar_still_counts(tokens):
    """ReScript has no grammar: unit extractors say so once per file, file_completion takes
    the file, complete_code takes blocks cut at blank lines."""
    document = doc(RESCRIPT, "rescript", "src/App.res")
    for kind in ("explain_code", "document_code", "implement_from_docstring"):
        [], [rejected] = run(kind, document, tokens)
        assert (rejected.reason, rejected.detail, rejected.file) == (
            "no grammar",
            "rescript: no tree-sitter grammar",
            "src/App.res",
        )
    [whole], [] = run("file_completion", document, tokens)
    assert whole.messages[1]["content"] == f"```rescript\n{RESCRIPT.rstrip()}\n```"
    examples, [] = run("complete_code", document, tokens)
    assert [e.metadata["unit"] for e in examples] == ["block at line 1", "block at line 5"]
    assert (
        examples[1]
        .messages[0]["content"]
        .endswith('```rescript\nlet greet = name => {\n  let text = "Hello " ++ name\n```')
    )
    assert examples[1].messages[1]["content"] == "```rescript\n  Js.log(text)\n}\n```"
    assert "parses" not in examples[1].metadata  # nothing parsed it: the syntax filter says so


def test_a_parsed_file_without_units_is_named(tokens):
    [], [rejected] = run("explain_code", doc("x = 1\ny = 2\n", "python", "c.py"), tokens)
    assert (rejected.reason, rejected.detail) == (
        "no unit",
        "no function, method or class in this python file",
    )
