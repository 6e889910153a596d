"""Does a piece of code parse? tree-sitter grammars from PyPI, one package per language.

tree-sitter recovers from errors instead of failing, so "parses" means the tree has no ERROR and
no MISSING node; the first such node gives the line to report.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

# grammar name -> (PyPI module, function returning the language pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "rust": ("tree_sitter_rust", "language"),
    "zig": ("tree_sitter_zig", "language"),
}


def supported(language: str | None) -> bool:
    return language in GRAMMARS


@functools.cache
def _parser(language: str) -> Any:
    from tree_sitter import Language, Parser

    module_name, attr = GRAMMARS[language]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(
            f"the {language} grammar is not installed: pip install {module_name.replace('_', '-')}"
        ) from exc
    return Parser(Language(getattr(module, attr)()))


def _first_error(node: Any) -> Any | None:
    """The first ERROR or MISSING node in document order, or None."""
    if node.is_error or node.is_missing:
        return node
    if not node.has_error:
        return None
    for child in node.children:
        found = _first_error(child)
        if found is not None:
            return found
    return node


def parse_error(code: str, language: str) -> str | None:
    """``None`` when ``code`` parses as ``language``, else a short reason naming the line."""
    if language not in GRAMMARS:
        raise ValueError(f"no grammar for '{language}' (known: {', '.join(sorted(GRAMMARS))})")
    tree = _parser(language).parse(code.encode("utf-8"))
    error = _first_error(tree.root_node)
    if error is None:
        return None
    line = error.start_point[0] + 1
    if error.is_missing:
        return f"{language} syntax error at line {line}: missing {error.type!r}"
    snippet = code.splitlines()[line - 1].strip() if code.splitlines() else ""
    return f"{language} syntax error at line {line}: {snippet[:60]!r}"
