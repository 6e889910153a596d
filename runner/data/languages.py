"""File extension -> language, and the names users may write for languages.

Parsing lives in ``runner.grammars`` (shared with evaluation); it is re-exported here for the data
stage's modules.
"""

from __future__ import annotations

from pathlib import PurePath

from runner.grammars import GRAMMARS, has_parser, parse_error, parser_for

__all__ = ["GRAMMARS", "has_parser", "parse_error", "parser_for", "language_of", "canonical"]

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
