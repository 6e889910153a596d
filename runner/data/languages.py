"""File extension -> language, and the tree-sitter parser of each language we can cut into units.

Grammars come from the PyPI wheels (``tree-sitter-python``...); each is loaded on first use and
cached per process, so worker processes pay for a grammar only when they meet its files.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import PurePath
from typing import Any

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".rs": "rust",
    ".zig": "zig",
    ".go": "go",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini",
    ".cfg": "ini",
    ".env": "env",
}

# Names users may write (`language: ts`) -> our canonical names.
ALIASES = {
    "py": "python",
    "ts": "typescript",
    "js": "javascript",
    "rs": "rust",
    "typescriptreact": "tsx",
    "node": "javascript",
}

# language -> (module, function returning the grammar)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "rust": ("tree_sitter_rust", "language"),
    "zig": ("tree_sitter_zig", "language"),
}

# The info-string of fenced code blocks for each language (```zig).
FENCE = {"tsx": "tsx", "typescript": "typescript", "javascript": "javascript"}


def language_of(path: str | PurePath) -> str | None:
    """The language of a file by its extension (``.env`` files by name), or None."""
    pure = PurePath(path)
    if pure.name == ".env" or pure.name.startswith(".env."):
        return "env"
    return EXTENSIONS.get(pure.suffix.lower())


def canonical(name: str) -> str:
    name = name.lower()
    return ALIASES.get(name, name)


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
    """The first ERROR or MISSING node under ``node`` in document order, or None."""
    if not node.has_error:
        return None
    cursor = [node]
    while cursor:
        current = cursor.pop()
        if current.type == "ERROR" or current.is_missing:
            return current
        if current.has_error:
            cursor.extend(reversed(current.children))
    return node


def parse_error(code: str, language: str) -> str | None:
    """None when ``code`` parses as ``language``; otherwise "parse error at line N"."""
    tree = parser_for(language).parse(code.encode("utf-8"))
    bad = first_error(tree.root_node)
    if bad is None:
        return None
    what = f"missing '{bad.type}'" if bad.is_missing else "parse error"
    return f"{what} at line {bad.start_point[0] + 1}"
