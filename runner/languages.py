"""Which language a file is written in, and the names people write for languages.

A file's language comes from, in order: the source's ``language_for`` patterns, a well-known
file name (``Dockerfile``, ``Makefile``, ``Gemfile``...), its extension, and for a file without
a known extension its shebang line (``#!/usr/bin/env python3``). Names and extensions come
from Pygments' lexer table (about 760 extensions and 70 file names; Pygments is installed with
rich), each lexer mapped to the name of its tree-sitter-language-pack grammar when it has one
(Pygments' ``docker`` is the pack's ``dockerfile``). An extension several lexers claim (``.h``,
``.m``, ``.pl``) goes to one with a grammar, then to the usual owner (``PREFERRED``).

Canonical names are the pack's grammar names (``go``, ``csharp``, ``cpp``, ``bash``), else
Pygments' first alias (``text``), else ours (``rescript``). ``canonical`` maps what people write
(``golang``, ``c++``, ``py``, a fence tag such as ``ts``) onto them.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable

from runner.grammars import has_parser

# What Pygments does not know (or names differently), by extension and by file name.
EXTRA_EXTENSIONS = {
    ".res": "rescript",
    ".resi": "rescript",
    ".svelte": "svelte",
    ".astro": "astro",
    ".mdx": "markdown",
    ".jsx": "javascript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".bzl": "starlark",
    ".tf": "terraform",
    ".hcl": "hcl",
    ".pem": "pem",
    ".gleam": "gleam",
    ".env": "env",
    # Templates: the embedded-template grammar reads EEx, ERB and EJS (Pygments says elixir).
    ".eex": "embeddedtemplate",
    ".leex": "embeddedtemplate",
    ".erb": "embeddedtemplate",
    ".ejs": "embeddedtemplate",
    ".heex": "heex",
    # Ruby DSLs (Rack's config.ru, CocoaPods specs, Builder and RABL templates)
    ".ru": "ruby",
    ".podspec": "ruby",
    ".builder": "ruby",
    ".rabl": "ruby",
    # XML under other names: MSBuild and NuGet, .NET resources, Xcode's files
    **dict.fromkeys(
        (".csproj", ".fsproj", ".vbproj", ".props", ".targets", ".nuspec", ".resx"), "xml"
    ),
    **dict.fromkeys((".storyboard", ".xib", ".plist", ".xcscheme", ".xcworkspacedata"), "xml"),
}
EXTRA_NAMES = {
    "go.mod": "gomod",
    "go.work": "gomod",
    "go.sum": "gosum",
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "Gemfile": "ruby",
    "Rakefile": "ruby",
    "Vagrantfile": "ruby",
    "Brewfile": "ruby",
    "Podfile": "ruby",
    "Fastfile": "ruby",
    "Appfile": "ruby",
    "Dangerfile": "ruby",
    "Jenkinsfile": "groovy",
    "BUILD": "starlark",
    "BUILD.bazel": "starlark",
    "WORKSPACE": "starlark",
    "Tiltfile": "starlark",
    "justfile": "make",
    ".env": "env",
}
# Owners of extensions several lexers claim.
PREFERRED = {".h": "c", ".m": "objc", ".pl": "perl", ".v": "verilog", ".inc": "php"}
# Interpreters named by a shebang line (version numbers are dropped: python3.11 -> python).
INTERPRETERS = {
    "python": "python",
    "pypy": "python",
    "node": "javascript",
    "nodejs": "javascript",
    "deno": "javascript",
    "bun": "javascript",
    "ts-node": "typescript",
    "sh": "bash",
    "bash": "bash",
    "zsh": "bash",
    "ksh": "bash",
    "dash": "bash",
    "ash": "bash",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
    "luajit": "lua",
    "elixir": "elixir",
    "escript": "erlang",
    "rscript": "r",
    "julia": "julia",
    "fish": "fish",
    "tclsh": "tcl",
    "pwsh": "powershell",
    "runghc": "haskell",
    "runhaskell": "haskell",
    "swift": "swift",
    "groovy": "groovy",
    "scala": "scala",
    "make": "make",
    "awk": "awk",
}
# Names people write that neither the pack nor Pygments spell so.
ALIASES = {
    "shell": "bash",
    "console": "bash",
    "typescriptreact": "tsx",
    "javascriptreact": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "res": "rescript",
    "golang": "go",
    "c#": "csharp",
    "cs": "csharp",
    "kt": "kotlin",
    "ex": "elixir",
    "exs": "elixir",
    "containerfile": "dockerfile",
}


@functools.cache
def _pygments_table() -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """Extension -> candidate languages, file name -> language, alias -> language."""
    from pygments.lexers import get_all_lexers

    extensions: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for _name, lexer_aliases, globs, _ in get_all_lexers():
        if not lexer_aliases or re.search(r"\w\+\w", lexer_aliases[0]):
            continue  # templates inside other languages (html+django): not a file's language
        language = next((a for a in lexer_aliases if has_parser(a)), lexer_aliases[0])
        for alias in lexer_aliases:
            aliases.setdefault(alias, language)
        for pattern in globs:
            if pattern.startswith("*.") and not re.search(r"[*?\[]", pattern[2:]):
                found = extensions.setdefault(pattern[1:].lower(), [])
                if language not in found:
                    found.append(language)
            elif not re.search(r"[*?\[]", pattern):
                names.setdefault(pattern, language)
    return extensions, names, aliases


@functools.cache
def _by_extension(extension: str) -> str | None:
    if extension in EXTRA_EXTENSIONS:
        return EXTRA_EXTENSIONS[extension]
    candidates = _pygments_table()[0].get(extension)
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    if extension in PREFERRED:
        return PREFERRED[extension]
    with_grammar = [c for c in candidates if has_parser(c)]
    return (with_grammar or candidates)[0]


def language_of(
    path: str,
    head: str | None = None,
    overrides: Iterable[tuple[object, str]] = (),
) -> str | None:
    """The language of the file at ``path`` (relative, posix), or None when nothing says.

    ``head`` is the start of the file (for a shebang); ``overrides`` are ``(spec, language)``
    pairs whose ``spec.match_file(path)`` wins over everything else.
    """
    for spec, language in overrides:
        if spec.match_file(path):  # type: ignore[attr-defined]
            return language
    name = path.rsplit("/", 1)[-1]
    known = EXTRA_NAMES.get(name) or _pygments_table()[1].get(name)
    if known is None and name.startswith((".env.", "Dockerfile.", "Containerfile.")):
        known = EXTRA_NAMES[name.split(".", 1)[0] or ".env"]
    if known is not None:
        return known
    extension = os.path.splitext(name)[1].lower()
    if extension:
        found = _by_extension(extension)
        if found is not None:
            return found
    return shebang_language(head) if head else None


_VERSION = re.compile(r"[\d.]+$")


def shebang_language(head: str) -> str | None:
    """The language a ``#!`` first line names (``#!/usr/bin/env -S python3 -u`` -> python)."""
    if not head.startswith("#!"):
        return None
    words = head[2:].split("\n", 1)[0].split()
    if words and words[0].rsplit("/", 1)[-1] == "env":
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not words:
        return None
    program = _VERSION.sub("", words[0].rsplit("/", 1)[-1].lower()) or words[0]
    return INTERPRETERS.get(program)


def canonical(name: str) -> str:
    """The canonical name of a language as people write it (``golang`` -> ``go``, ``py`` ->
    ``python``, ``c++`` -> ``cpp``); unknown names are kept, lower-cased."""
    name = name.strip().lower()
    if has_parser(name):
        return name
    if name in ALIASES:
        return ALIASES[name]
    return _pygments_table()[2].get(name, name)
