"""Go's text/template syntax, as far as Ollama's templates use it: text, actions with trim
markers, ``if``/``else if``/``range``/``with``/``end``, ``break``/``continue``, pipelines,
variables, string literals and comments (text/template/parse). ``runner.prompt.gorender``
executes the tree."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class GoTemplateError(Exception):
    """The template does not parse, uses what this renderer does not implement, or fails."""


_SPACE = " \t\r\n"


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipe


@dataclass
class If:
    pipe: Pipe
    body: list[Any]
    orelse: list[Any] | None


@dataclass
class Range:
    pipe: Pipe
    body: list[Any]
    orelse: list[Any] | None


@dataclass
class With:
    pipe: Pipe
    body: list[Any]
    orelse: list[Any] | None


@dataclass
class Loop:
    kind: str  # "break" or "continue"


@dataclass
class Pipe:
    decl: list[str]  # variable names declared or assigned
    assign: bool  # "=" rather than ":="
    cmds: list[list[Any]]  # each command: a list of operands/identifiers


@dataclass
class Tree:
    nodes: list[Any]
    identifiers: set[str] = field(default_factory=set)


def parse(text: str) -> Tree:
    """Parse ``text`` into a tree (lexing with Go's trim markers)."""
    items = _lex(text)
    pos = 0
    identifiers: set[str] = set()

    def parse_list() -> tuple[list[Any], str | None, list[Any]]:
        """Nodes up to an {{ end }} or {{ else ... }}, which is returned with its words."""
        nonlocal pos
        nodes: list[Any] = []
        while pos < len(items):
            kind, value = items[pos]
            pos += 1
            if kind == "text":
                if value:
                    nodes.append(Text(value))
                continue
            head = value[0]
            if head in ("end", "else"):
                return nodes, head, value[1:]
            if head in ("if", "range", "with"):
                nodes.append(parse_control(head, value[1:]))
            elif head in ("break", "continue"):
                nodes.append(Loop(head))
            elif head in ("define", "template", "block"):
                raise GoTemplateError(f"{{{{{head}}}}} is not supported")
            else:
                nodes.append(Action(_parse_pipe(value, identifiers)))
        return nodes, None, []

    def parse_control(kind: str, words: list[Any]) -> Any:
        # {{ else if X }} is {{ else }}{{ if X }}...{{ end }} sharing the enclosing {{ end }}.
        pipe = _parse_pipe(words, identifiers, control=kind)
        body, term, rest = parse_list()
        orelse = None
        if term == "else":
            if rest and rest[0] in ("if", "with"):
                orelse = [parse_control(rest[0], rest[1:])]
            elif rest:
                raise GoTemplateError(f"unexpected words after else: {rest}")
            else:
                orelse, term, _ = parse_list()
                if term != "end":
                    raise GoTemplateError(f"missing {{{{end}}}} for {kind}")
        elif term != "end":
            raise GoTemplateError(f"missing {{{{end}}}} for {kind}")
        node_type = {"if": If, "range": Range, "with": With}[kind]
        return node_type(pipe, body, orelse)

    nodes, term, _ = parse_list()
    if term is not None:
        raise GoTemplateError(f"unexpected {{{{{term}}}}}")
    return Tree(nodes, identifiers)


def _lex(text: str) -> list[tuple[str, Any]]:
    """Text and action items; an action is a list of words (strings, with string literals kept
    as ("str", value) tuples and parentheses as "(" / ")")."""
    items: list[tuple[str, Any]] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if start < 0:
            items.append(("text", chunk))
            return items
        inner = start + 2
        if text.startswith("-", inner) and inner + 1 < len(text) and text[inner + 1] in _SPACE:
            chunk = chunk.rstrip(_SPACE)
            inner += 2
        items.append(("text", chunk))
        words, end, trim_next = _lex_action(text, inner)
        if words is not None:
            items.append(("action", words))
        pos = end


def _lex_action(text: str, pos: int) -> tuple[list[Any] | None, int, bool]:
    words: list[Any] = []
    while True:
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        if text.startswith("-}}", pos) and text[pos - 1] in _SPACE:
            return (words or None), pos + 3, True
        if text.startswith("}}", pos):
            return (words or None), pos + 2, False
        if pos >= len(text):
            raise GoTemplateError("unclosed action")
        ch = text[pos]
        if text.startswith("/*", pos):
            end = text.find("*/", pos)
            if end < 0:
                raise GoTemplateError("unclosed comment")
            pos = end + 2
            continue
        if ch == '"':
            match = re.compile(r'"((?:[^"\\\n]|\\.)*)"').match(text, pos)
            if not match:
                raise GoTemplateError("unterminated quoted string")
            words.append(("str", _unquote(match.group(1))))
            pos = match.end()
        elif ch == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise GoTemplateError("unterminated raw string")
            words.append(("str", text[pos + 1 : end]))
            pos = end + 1
        elif ch in "()|":
            words.append(ch)
            pos += 1
        elif text.startswith(":=", pos) or ch == "=":
            words.append(":=" if ch == ":" else "=")
            pos += 2 if ch == ":" else 1
        elif ch == ",":
            words.append(",")
            pos += 1
        else:
            match = re.compile(r"[^\s()|,=\"`]+").match(text, pos)
            if not match or match.group(0).startswith("}}"):
                raise GoTemplateError(f"unexpected {ch!r} in action")
            word = match.group(0)
            cut = word.find("}}")  # a word stops where the action ends
            if cut > 0:
                word = word[:cut]
            words.append(word)
            pos += len(word)


_GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "a": "\a"}
_GO_ESCAPES.update({"b": "\b", "f": "\f", "v": "\v"})


def _unquote(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _GO_ESCAPES:
            out.append(_GO_ESCAPES[nxt])
            i += 2
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        elif nxt == "x":
            # \xNN is a byte; only ASCII bytes are supported here.
            value = int(body[i + 2 : i + 4], 16)
            if value > 0x7F:
                raise GoTemplateError("\\x escapes above 0x7f are not supported")
            out.append(chr(value))
            i += 4
        else:
            raise GoTemplateError(f"unknown escape \\{nxt}")
    return "".join(out)


def _parse_pipe(words: list[Any], identifiers: set[str], control: str | None = None) -> Pipe:
    decl: list[str] = []
    assign = False
    words = list(words)
    # Declarations: "$x :=", "$x =", or in range "$i, $x :=".
    for n in (3, 1):
        if (
            len(words) > n
            and words[n] in (":=", "=")
            and all(isinstance(w, str) and w.startswith("$") for w in words[0:n:2])
            and (n == 1 or words[1] == ",")
        ):
            if n == 3 and control != "range":
                raise GoTemplateError("two variables are only declared by range")
            decl = [w for w in words[0:n:2]]
            assign = words[n] == "="
            words = words[n + 1 :]
            break
    for name in decl:
        identifiers.add(name.lstrip("$").lower())
    cmds: list[list[Any]] = []
    current: list[Any] = []
    depth = 0
    for w in words:
        if w == "(":
            depth += 1
        elif w == ")":
            depth -= 1
        if w == "|" and depth == 0:
            cmds.append(current)
            current = []
        else:
            current.append(w)
    cmds.append(current)
    if depth != 0:
        raise GoTemplateError("unbalanced parentheses")
    if not all(cmds):
        raise GoTemplateError("missing command in pipeline")
    for w in words:
        if isinstance(w, str) and (w.startswith(".") or w.startswith("$")):
            for part in w.split("."):
                if part:
                    identifiers.add(part.lstrip("$").lower())
    return Pipe(decl, assign, cmds)
