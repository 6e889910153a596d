"""Does code parse? tree-sitter grammars from PyPI, shared by the data stage (cutting units, the
`syntax` filter) and evaluation (the `syntax` check), so both judge code the same way.

tree-sitter recovers from errors instead of failing, so "parses" means the tree has no ERROR and
no MISSING node; the first such node gives the line to report. Grammars load on first use and are
cached per process, so worker processes pay only for the languages they meet.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

# language -> (PyPI module, function returning the grammar)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "rust": ("tree_sitter_rust", "language"),
    "zig": ("tree_sitter_zig", "language"),
}


def has_parser(language: str | None) -> bool:
    return language in GRAMMARS


@functools.cache
def parser_for(language: str) -> Any:
    """A tree-sitter ``Parser`` for ``language`` (cached per process); KeyError if none."""
    import tree_sitter

    module_name, function = GRAMMARS[language]
    module = importlib.import_module(module_name)
    return tree_sitter.Parser(tree_sitter.Language(getattr(module, function)()))


def first_error(node: Any) -> Any | None:
    """The first ERROR or MISSING node under ``node`` in document order, or None.

    Some grammars flag a node as erroneous without an ERROR or MISSING child (tree-sitter-zig's
    missing identifier); then the deepest first node that has the error is the best place to point.
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
