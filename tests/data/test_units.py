"""One rule cuts units from any grammar: a table of small real files in languages the five old
grammar packages did not cover, with the unit, its kind and its documentation."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from runner.data.units import parse_units, text_blocks, unit_starts, walk_units

CASES = {
    "go": (
        "package main\n\n// Add returns the sum of a and b.\nfunc Add(a, b int) int {\n"
        "\treturn a + b\n}\n\n// Start opens the listener.\nfunc (s *Server) Start() error {\n"
        "\treturn nil\n}\n",
        [
            ("function", "Add", "Add returns the sum of a and b."),
            ("method", "Start", "Start opens the listener."),
        ],
    ),
    "kotlin": (
        "package demo\n\n/**\n * Adds two numbers.\n */\nfun add(a: Int, b: Int): Int {\n"
        "    return a + b\n}\n\n/** A point. */\nclass Point(val x: Int) {\n"
        "    /** Its norm. */\n    fun norm(): Int = x\n}\n",
        [
            ("function", "add", "Adds two numbers."),
            ("class", "Point", "A point."),
            ("function", "norm", "Its norm."),
        ],
    ),
    "elixir": (
        'defmodule Demo.Math do\n  @moduledoc """\n  Math helpers.\n  """\n\n  @doc """\n'
        '  Adds two numbers.\n  """\n  @spec add(integer, integer) :: integer\n'
        "  def add(a, b) do\n    a + b\n  end\nend\n",
        [("module", "Demo.Math", "Math helpers."), ("function", "add", "Adds two numbers.")],
    ),
    "java": (
        "/** A greeter. */\npublic class Greeter {\n    /** Greets someone. */\n"
        "    @Override\n    public String greet(String name) {\n        return name;\n    }\n}\n",
        [("class", "Greeter", "A greeter."), ("method", "greet", "Greets someone.")],
    ),
    "ruby": (
        "# A stack.\nclass Stack\n  # Pushes an item.\n  def push(item)\n    @items << item\n"
        "  end\nend\n",
        [("class", "Stack", "A stack."), ("method", "push", "Pushes an item.")],
    ),
    "c": (
        "/* Adds two ints. */\nint add(int a, int b) {\n    return a + b;\n}\n\n"
        "struct point {\n    int x;\n};\n",
        [("function", "add", "Adds two ints."), ("struct", "point", None)],
    ),
    "csharp": (
        "namespace Demo {\n    /// <summary>Adds numbers.</summary>\n    public class Calc {\n"
        "        public int Add(int a, int b) { return a + b; }\n    }\n}\n",
        [("namespace", "Demo", None), ("class", "Calc", "Adds numbers."), ("method", "Add", None)],
    ),
    "lua": (
        "--- Adds two numbers.\nlocal function add(a, b)\n  return a + b\nend\n",
        [("function", "add", "Adds two numbers.")],
    ),
    "bash": (
        "#!/bin/bash\n# Prints a greeting.\ngreet() {\n  echo hi\n}\n",
        [("function", "greet", "Prints a greeting.")],
    ),
    "zig": (
        "/// Divides.\npub fn divide(a: f32, b: f32) f32 {\n    return a / b;\n}\n\n"
        "/// A point.\nconst Point = struct {\n    x: i32,\n    /// Its norm.\n"
        '    pub fn norm(self: Point) i32 {\n        return self.x;\n    }\n};\n\ntest "adds" {}\n',
        [
            ("function", "divide", "Divides."),
            ("struct", "Point", "A point."),
            ("function", "norm", "Its norm."),
            ("test", "adds", None),
        ],
    ),
    "rust": (
        "/// A payment.\n#[derive(Debug)]\npub struct Payment {\n    amount: u64,\n}\n\n"
        "impl Payment {\n    /// Its amount.\n    pub fn amount(&self) -> u64 {\n"
        "        self.amount\n    }\n}\n",
        [
            ("struct", "Payment", "A payment."),
            ("impl", "Payment", None),
            ("function", "amount", "Its amount."),
        ],
    ),
    "typescript": (
        "/** Validates a price. */\nexport const validate = (p: number): boolean => {\n"
        "  return p > 0;\n};\n",
        [("function", "validate", "Validates a price.")],
    ),
    "python": (
        "@cache\ndef f(x):\n    '''Squares x.'''\n    return x * x\n",
        [("function", "f", "Squares x.")],
    ),
    "clojure": (
        '(defn add\n  "Adds two numbers."\n  [a b]\n  (+ a b))\n',
        [("function", "add", "Adds two numbers.")],
    ),
}


@pytest.mark.parametrize("language", sorted(CASES))
def test_units_of_any_grammar(language):
    text, expected = CASES[language]
    units, parses = parse_units(text, language)
    assert parses
    assert [(u.kind, u.name, u.doc) for u in walk_units(units)] == expected


@pytest.mark.parametrize("language", sorted(CASES))
def test_unit_starts_are_the_top_level_units_start_lines(language):
    """Cutting a file into pieces asks only where its units start (``unit_starts``)."""
    text, _ = CASES[language]
    units, parses = parse_units(text, language)
    assert unit_starts(text, language) == ([u.start_line - 1 for u in units], parses)


def test_unit_starts_on_real_files():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("json/decoder.py", "email/_header_value_parser.py", "asyncio/base_events.py"):
        text = (stdlib / name).read_text(encoding="utf-8")
        units, parses = parse_units(text, "python")
        assert len(units) > 3
        assert unit_starts(text, "python") == ([u.start_line - 1 for u in units], parses)
    broken = "def f(:\n    pass\n\nclass A:\n    x = 1\n"
    assert unit_starts(broken, "python")[1] is parse_units(broken, "python")[1] is False


def test_unit_code_and_documentation_as_written():
    text, _ = CASES["zig"]
    divide = parse_units(text, "zig")[0][0]
    assert divide.code.startswith("pub fn divide(")
    assert divide.documented_code == "/// Divides.\n" + divide.code
    assert divide.signature == "pub fn divide(a: f32, b: f32) f32"
    elixir = walk_units(parse_units(CASES["elixir"][0], "elixir")[0])[1]
    assert elixir.doc_raw == '@doc """\n  Adds two numbers.\n  """'
    python = parse_units(CASES["python"][0], "python")[0][0]
    assert python.code.startswith("@cache\n") and python.doc_inside
    assert python.code_without_doc == "@cache\ndef f(x):\n    return x * x"


def test_shebang_and_blank_line_are_not_documentation():
    [unit] = parse_units("#!/bin/sh\nrun() {\n  true\n}\n", "bash")[0]
    assert unit.doc is None
    [unit] = parse_units("# Licence text.\n\ndef f():\n    pass\n", "python")[0]
    assert unit.doc is None


def test_text_blocks_cut_at_blank_lines_before_the_margin():
    text = (
        "let add = (a, b) => {\n  a + b\n}\n\nlet x = 1\n\ntype t = {\n  a: int,\n\n  b: int,\n}\n"
    )
    assert text_blocks(text) == [
        (1, "let add = (a, b) => {\n  a + b\n}\n"),
        (7, "type t = {\n  a: int,\n\n  b: int,\n}\n"),
    ]
