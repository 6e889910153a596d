"""Does code parse? Every grammar of tree-sitter-language-pack, shared by the data stage (cutting
units, the `syntax` filter) and evaluation (the `syntax` check), so both judge code the same way.

tree-sitter-language-pack 0.13 ships about 170 compiled grammars inside its wheel (Go, Kotlin,
Elixir, Java, Swift, Ruby, PHP, Scala, Lua, Haskell, OCaml, Dart, C#...); its 1.x releases
download grammars at first use, which fails offline and would make a run depend on a download,
hence the pin in pyproject.toml. tree-sitter recovers from errors instead of failing, so
"parses" means the tree has no ERROR and no MISSING node; the first such node gives the line to
report. Grammars load on first use and are cached per process, so worker processes pay only for
the languages they meet.
"""

from __future__ import annotations

import functools
import typing
from typing import Any

# Names of the pack's grammars that are not a programming or data language of their own
# (fragments other grammars inject, test fixtures): a file is never "in" one of these.
_NOT_LANGUAGES = frozenset({"comment", "doxygen", "jsdoc", "luadoc", "luap", "printf", "test"})
# Grammars taken from their own package instead of the pack's. The pack's Zig grammar
# (maxxnino/tree-sitter-zig) reads any run of identifiers as container fields, so prose such as
# "I think so" parses as Zig and a model answering in words would pass the syntax check; the
# official grammar (tree-sitter-grammars/tree-sitter-zig, PyPI tree-sitter-zig) rejects it.
OWN_PACKAGE = {"zig": ("tree_sitter_zig", "language")}


@functools.cache
def grammar_names() -> frozenset[str]:
    """Every language with a grammar, by the pack's names (``go``, ``csharp``, ``cpp``...)."""
    import tree_sitter_language_pack as pack

    return frozenset(typing.get_args(pack.SupportedLanguage)) - _NOT_LANGUAGES


def has_parser(language: str | None) -> bool:
    return language is not None and language in grammar_names()


@functools.cache
def parser_for(language: str) -> Any:
    """A tree-sitter ``Parser`` for ``language`` (cached per process); KeyError if none."""
    if not has_parser(language):
        raise KeyError(language)
    if language in OWN_PACKAGE:
        import importlib

        import tree_sitter

        module, function = OWN_PACKAGE[language]
        grammar = getattr(importlib.import_module(module), function)()
        return tree_sitter.Parser(tree_sitter.Language(grammar))
    import tree_sitter_language_pack as pack

    return pack.get_parser(language)


def first_error(node: Any) -> Any | None:
    """The first ERROR or MISSING node under ``node`` in document order, or None.

    Some grammars flag a node as erroneous without an ERROR or MISSING child; then the deepest
    first node that has the error is the best place to point.
    """
    if not (node.has_error or node.is_error or node.is_missing):
        return None
    # Descend (iteratively: code can nest deeper than Python's recursion limit) into the first
    # child that holds the error, until an ERROR/MISSING node or a leaf of the error path.
    while not (node.is_error or node.is_missing):
        child = next((c for c in node.children if c.is_error or c.is_missing or c.has_error), None)
        if child is None:
            return node
        node = child
    return node


def parse_error(code: str, language: str) -> str | None:
    """None when ``code`` parses as ``language``; otherwise a reason naming the line, e.g.
    "missing ')' at line 1" or "parse error at line 2: 'const x = ;'"."""
    tree = parser_for(language).parse(code.encode("utf-8"))
    bad = first_error(tree.root_node)
    if bad is None:
        return None
    line = bad.start_point[0] + 1
    if bad.is_missing:
        return f"missing '{bad.type}' at line {line}"
    lines = code.splitlines()
    snippet = lines[line - 1].strip()[:60] if 0 < line <= len(lines) else ""
    return f"parse error at line {line}" + (f": {snippet!r}" if snippet else "")
