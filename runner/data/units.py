"""Code units (functions, methods, classes...) cut from a file by one rule over any grammar's
syntax tree, with their documentation.

There is no table of node types per language. Grammars name their nodes with a shared
vocabulary (``function_definition``, ``method_declaration``, ``class_specifier``,
``struct_item``, Ruby's ``method``, Zig's ``TestDecl``), so a node is a unit when the words of
its type (split at ``_`` and case changes; ``fn``/``func`` read as function, ``decl`` as
declaration) name a kind of unit (``KINDS``) in last place, or just before a declaration word
(``DECLARATION_WORDS``). Three shapes that rule misses are units too:

- a declaration binding a name to a function or to a unit-typed value
  (``const f = () => {}``, Zig's ``const S = struct {...}``);
- a declaration made of a function header and a body (Zig's ``Decl(FnProto, Block)``);
- a call of a ``def...`` form (Elixir's ``def``/``defmodule``, Lisp's ``defn``/``defun``).

A unit's documentation is its docstring (a string literal opening its body: Python, Elixir's
``@moduledoc``, Lisp) or else what stands right above it (no blank line between, attributes
and decorators skipped): a block of comments (Go, Rust, Java, Zig, Ruby...) or an ``@doc``
attribute (Elixir). Whether it says anything worth training on is the extractors' call.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from runner.grammars import has_parser, parser_for

# The word of a node type naming a kind of unit -> the kind.
KINDS = {
    "function": "function",
    "procedure": "function",
    "subroutine": "function",
    "method": "method",
    "constructor": "constructor",
    "macro": "macro",
    "test": "test",
    "class": "class",
    "struct": "struct",
    "container": "struct",
    "enum": "enum",
    "union": "union",
    "interface": "interface",
    "trait": "trait",
    "protocol": "protocol",
    "impl": "impl",
    "implementation": "impl",
    "extension": "extension",
    "module": "module",
    "namespace": "namespace",
    "object": "object",
    "record": "record",
    "type": "type",
    "contract": "contract",
    "actor": "actor",
    "mixin": "mixin",
}
# Kinds a node type may name by that word alone (Ruby's `method`, Haskell's `function`); the
# others need a declaration word after them (`type_declaration`, not `primitive_type`).
ALONE = frozenset({"function", "method", "class", "module"})
# Kinds whose members are units of their own (a class's methods); the rest are leaves.
LEAF_KINDS = frozenset({"function", "method", "constructor", "macro", "test"})
DECLARATION_WORDS = frozenset({"declaration", "definition", "item", "specifier"})
ABBREVIATIONS = {
    "fn": "function",
    "func": "function",
    "fun": "function",
    "decl": "declaration",
    "def": "definition",
    "proc": "procedure",
    "mod": "module",
}
# Words of nodes that wrap a unit with what belongs to it (`@decorator`, `export`, `template<>`).
WRAPPER_WORDS = frozenset({"decorated", "export", "template", "annotated", "attributed"})
# Words of the node holding a unit's body.
BODY_WORDS = frozenset({"body", "block", "compound", "structure"})
# Words of a function value bound by a declaration, or of a function's header.
FUNCTION_VALUE_WORDS = frozenset({"arrow", "lambda", "closure"})
HEADER_WORDS = frozenset({"proto", "prototype", "signature", "header"})
# How deep the search for units goes below a file or a unit's body through other nodes
# (`if __name__ == "__main__":` blocks, namespaces' lists), and below a declaration for the
# value it binds.
SEARCH_DEPTH = 3
VALUE_DEPTH = 4
DEF_FORM = re.compile(r"^\(?def[a-z]*$|^define$")
DIRECTIVE = re.compile(r"^use \w+$")  # 'use strict' opens a JS body; it documents nothing


@dataclass
class Unit:
    name: str
    kind: str
    language: str
    code: str  # the unit as written (with its docstring; without the documentation above it)
    start_line: int
    end_line: int
    doc: str | None = None  # documentation as plain text
    doc_raw: str | None = None  # documentation as written in the source
    doc_inside: bool = False  # a docstring in the body rather than documentation above
    code_without_doc: str = ""
    signature: str = ""  # the code before the body ("def f(x):", "pub fn f() void")
    has_error: bool = False
    documented: str = ""  # the unit with the documentation above it, as in the file
    children: list[Unit] = field(default_factory=list)

    @property
    def documented_code(self) -> str:
        """The unit with its documentation, as it stands in the file."""
        return self.documented or self.code


@functools.cache
def words(node_type: str) -> tuple[str, ...]:
    """``TestDecl`` -> (test, declaration); ``function_definition`` -> (function, definition)."""
    parts = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", node_type)
    return tuple(ABBREVIATIONS.get(p.lower(), p.lower()) for p in parts)


@functools.cache
def kind_of_type(node_type: str) -> str | None:
    """The unit kind a node type names by itself, or None."""
    found = words(node_type)
    if not found:
        return None
    if found[-1] in ALONE:
        return KINDS[found[-1]]
    if len(found) >= 2 and found[-1] in DECLARATION_WORDS and found[-2] in KINDS:
        return KINDS[found[-2]]
    return None


def _is_comment(node: Any) -> bool:
    return "comment" in words(node.type) or node.type == "haddock"


def _is_string(node: Any) -> bool:
    return "string" in node.type.lower() or words(node.type)[:2] == ("str", "lit")


def parse_units(text: str, language: str) -> tuple[list[Unit], bool]:
    """The top-level units of a file (members nested in ``children``) and whether the file
    as a whole parsed without error."""
    if not has_parser(language):
        return [], True
    cutter = _Cutter.parse(text, language)
    return cutter.units_under(cutter.root), not cutter.root.has_error


def unit_starts(text: str, language: str) -> tuple[list[int], bool]:
    """The 0-based lines where the top-level units of a file start (``parse_units``'s
    ``start_line - 1``) and whether the file parsed: what cutting a file into pieces needs.
    Building every unit (its code, documentation and members) for that took about 4 of the
    bench workers' 36 CPU seconds (1.3-1.6 s against 1.0 s for 7 MB; the parse is 0.9 s)."""
    if not has_parser(language):
        return [], True
    cutter = _Cutter.parse(text, language)
    starts = [outer.start_point[0] for outer, _ in cutter.found_under(cutter.root)]
    return starts, not cutter.root.has_error


@dataclass
class _Found:
    """What the rule saw in a node: its kind, the nodes naming it and holding its body."""

    kind: str
    node: Any
    name: Any = None  # a node, or None
    body: Any = None
    doc_after: Any = None  # where a Lisp-style docstring would follow the name
    last: Any = None  # the node ending the unit, when it is not ``node`` (Dart's body)


class _Cutter:
    def __init__(self, data: bytes, language: str, root: Any):
        self.data = data
        self.language = language
        self.root = root

    @classmethod
    def parse(cls, text: str, language: str) -> _Cutter:
        data = text.encode("utf-8")
        return cls(data, language, parser_for(language).parse(data).root_node)

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", "replace")

    def node_text(self, node: Any) -> str:
        return self.text(node.start_byte, node.end_byte)

    # -- finding units ----------------------------------------------------------------------
    def found_under(self, node: Any, depth: int = SEARCH_DEPTH) -> list[tuple[Any, _Found]]:
        """``(outer node, what was found)`` of the units below ``node``, not inside each other."""
        found = []
        children = node.named_children
        for index, child in enumerate(children):
            if _is_comment(child) or _is_string(child):
                continue
            unit = self.find(child)
            if unit is None and index + 1 < len(children):
                unit = self.header_then_body(child, children[index + 1])
            if unit is not None:
                found.append(unit)
            elif depth > 0 and child.named_child_count:
                found.extend(self.found_under(child, depth - 1))
        return found

    def header_then_body(self, header: Any, body: Any) -> tuple[Any, _Found] | None:
        """Dart's ``function_signature`` followed by its ``function_body``, as siblings."""
        header_words = set(words(header.type))
        if (
            header_words & {"function", "method"}
            and header_words & HEADER_WORDS
            and "body" in words(body.type)
        ):
            kind = "method" if "method" in header_words else "function"
            return header, _Found(kind, header, self.name_node(header), body, last=body)
        return None

    def find(self, node: Any) -> tuple[Any, _Found] | None:
        """``(outer, found)`` when ``node`` is a unit, or wraps one (decorators, export)."""
        if WRAPPER_WORDS & set(words(node.type)):
            for child in node.named_children:
                seen = self.classify(child)
                if seen is not None:
                    return node, seen
        seen = self.classify(node)
        return (node, seen) if seen is not None else None

    def classify(self, node: Any) -> _Found | None:
        kind = kind_of_type(node.type)
        if kind is not None:
            alone = words(node.type)[-1] in ALONE
            name = node.child_by_field_name("name") if alone else self.name_node(node)
            if name is None and alone:
                return None  # `function` alone names anonymous functions and function types
            return _Found(kind, node, name, self.body_of(node))
        node_words = words(node.type)
        if "call" in node_words or node.type in ("list_lit", "list"):
            return self.def_form(node)
        if DECLARATION_WORDS & set(node_words) or "declarator" in node_words:
            return self.header_and_body(node) or self.binding(node)
        return None

    def header_and_body(self, node: Any) -> _Found | None:
        """Zig's ``Decl(FnProto, Block)``: a function header followed by its body."""
        children = node.named_children
        for header, body in zip(children, children[1:], strict=False):
            header_words = set(words(header.type))
            if (
                "function" in header_words
                and header_words & HEADER_WORDS
                and BODY_WORDS & set(words(body.type))
            ):
                return _Found("function", node, self.name_node(header), body)
        return None

    def binding(self, node: Any) -> _Found | None:
        """``const f = () => {}``, ``const S = struct {...}``: a name bound to a unit value."""
        name = None
        queue = [(child, 1) for child in node.named_children]
        while queue:
            current, depth = queue.pop(0)
            current_words = set(words(current.type))
            if name is None and self.is_name(current):
                name = current
                continue
            kind = kind_of_type(current.type)
            value_words = words(current.type)
            if kind is None and (
                current_words & FUNCTION_VALUE_WORDS
                or ("function" in current_words and value_words[-1] in ("literal", "expression"))
            ):
                kind = "function"
            body = self.body_of(current) if kind is not None else None
            if kind in LEAF_KINDS and body is None:
                kind = None  # a call such as Zig's @import("std") is no function value
            if kind is not None:
                if name is None:
                    return None
                return _Found(kind, node, name, body or current)
            opaque = _is_string(current) or {"call", "arguments"} & current_words
            if depth < VALUE_DEPTH and not opaque:
                queue.extend((child, depth + 1) for child in current.named_children)
        return None

    def def_form(self, node: Any) -> _Found | None:
        """Elixir's ``def add(a, b) do``, Clojure's ``(defn add ...)``: a ``def...`` call."""
        children = node.named_children
        if len(children) < 2:
            return None
        callee = node.child_by_field_name("target") or children[0]
        form = self.node_text(callee).strip()
        if not DEF_FORM.match(form):
            return None
        form = form.lstrip("(")
        kind = next(
            (
                k
                for word, k in (("module", "module"), ("protocol", "protocol"), ("impl", "impl"))
                if word in form
            ),
            "macro" if "macro" in form else "struct" if "struct" in form else "function",
        )
        rest = [c for c in children if c.start_byte >= callee.end_byte]
        name = self.first_leaf(rest[0]) if rest else None
        body = next((c for c in reversed(children) if BODY_WORDS & set(words(c.type))), None)
        after = rest[0].next_named_sibling if rest and body is None else None
        return _Found(kind, node, name, body or node, doc_after=after)

    # -- naming -----------------------------------------------------------------------------
    @staticmethod
    def is_name(node: Any) -> bool:
        found = words(node.type)
        return bool(found) and found[-1] in ("identifier", "name", "constant", "word", "alias")

    def first_leaf(self, node: Any) -> Any:
        while node.named_child_count:
            node = node.named_children[0]
        return node

    def name_node(self, node: Any) -> Any:
        """The node naming a unit: its ``name`` field, its declarator's name, an impl's type,
        else its first identifier-like child or grandchild."""
        for field_name in ("name", "declarator", "type"):
            child = node.child_by_field_name(field_name)
            if child is None:
                continue
            if field_name == "declarator":
                return self.name_node(child) if not self.is_name(child) else child
            if field_name == "name" or node.type.startswith("impl"):
                return child
        for child in node.named_children:
            if self.is_name(child) or _is_string(child):
                return child
        for child in node.named_children:
            if BODY_WORDS & set(words(child.type)):
                break
            named = child.child_by_field_name("name")
            if named is not None:
                return named  # Dart: method_signature > function_signature(name)
            for grandchild in child.named_children:
                if self.is_name(grandchild):
                    return grandchild
            leaf = self.first_leaf(child)
            if self.is_name(leaf):
                return leaf  # Julia: function_definition > signature > call > identifier
        return None

    @staticmethod
    def body_of(node: Any) -> Any:
        body = node.child_by_field_name("body")
        if body is not None:
            return body
        for child in reversed(node.named_children):
            if BODY_WORDS & set(words(child.type)) or child.type in (
                "declaration_list",
                "field_declaration_list",
            ):
                return child
        return None

    # -- building units ---------------------------------------------------------------------
    def units_under(self, node: Any, depth: int = SEARCH_DEPTH) -> list[Unit]:
        return [self.unit(outer, seen) for outer, seen in self.found_under(node, depth)]

    def leading_start(self, outer: Any) -> int:
        """Where a unit starts: its node, or unnamed keywords before it on its line (Zig's
        ``pub`` stands outside the declaration node)."""
        start = outer.start_byte
        previous = outer.prev_sibling
        while (
            previous is not None
            and not previous.is_named
            and previous.start_point[0] == outer.start_point[0]
        ):
            start = previous.start_byte
            previous = previous.prev_sibling
        return start

    def unit(self, outer: Any, seen: _Found) -> Unit:
        name = self.node_text(seen.name).strip().strip("\"'") if seen.name is not None else ""
        start = self.leading_start(outer)
        last = seen.last if seen.last is not None else outer
        unit = Unit(
            name=name.split("\n", 1)[0][:80] or seen.kind,
            kind=seen.kind,
            language=self.language,
            code=self.text(start, last.end_byte),
            start_line=outer.start_point[0] + 1,
            end_line=last.end_point[0] + 1,
            has_error=outer.has_error or last.has_error,
        )
        unit.code_without_doc = unit.code
        body = seen.body if seen.body is not None and seen.body is not seen.node else None
        if body is not None and body.start_byte > start:
            signature = self.text(start, body.start_byte).rstrip().split("\n")
            while len(signature) > 1 and _COMMENT_LINE.match(signature[-1]):
                signature.pop()  # a comment opening the body is not part of the signature
            unit.signature = "\n".join(signature).rstrip()
        else:
            unit.signature = unit.code.split("\n", 1)[0]
        if not self.docstring(unit, outer, seen):
            self.doc_above(unit, start, last.end_byte)
        if seen.kind not in LEAF_KINDS and seen.body is not None:
            unit.children = self.units_under(seen.body, depth=2)
        return unit

    def docstring(self, unit: Unit, outer: Any, seen: _Found) -> bool:
        """A string literal opening the body (or following a Lisp form's name)."""
        candidates = []
        if seen.body is not None and seen.body is not seen.node and seen.body.named_child_count:
            candidates.append(seen.body.named_children[0])
        if seen.doc_after is not None:
            candidates.append(seen.doc_after)
        for candidate in candidates:
            literal = self.string_in(candidate)
            if literal is None:
                continue
            doc = self.string_value(literal)
            if not doc or DIRECTIVE.match(doc):
                continue
            unit.doc, unit.doc_raw, unit.doc_inside = doc, self.node_text(literal), True
            if literal.start_point[0] > outer.start_point[0]:  # cut its whole lines out
                line_start = self.data.rfind(b"\n", 0, candidate.start_byte) + 1
                line_end = self.data.find(b"\n", candidate.end_byte)
                line_end = len(self.data) if line_end < 0 else line_end + 1
                start = self.leading_start(outer)
                unit.code_without_doc = (
                    self.text(start, line_start) + self.text(line_end, outer.end_byte)
                ).rstrip()
            return True
        return False

    def string_in(self, node: Any) -> Any:
        """The string literal ``node`` is (a statement holding only it), or the one an
        ``@moduledoc``/``@doc`` attribute holds."""
        if _is_string(node):
            return node
        if node.named_child_count == 1 and "statement" in words(node.type):
            return self.string_in(node.named_children[0])
        if re.match(r"@(module|type)?doc\b", self.node_text(node)):
            stack = list(reversed(node.named_children))
            while stack:
                current = stack.pop()
                if _is_string(current):
                    return current
                stack.extend(reversed(current.named_children))
        return None

    def string_value(self, literal: Any) -> str:
        raw = self.node_text(literal)
        if self.language == "python":
            try:
                value = ast.literal_eval(raw)
                if isinstance(value, str):
                    return inspect.cleandoc(value)
            except (ValueError, SyntaxError):
                pass
        raw = re.sub(r'^[A-Za-z~]*("""|\'\'\'|"|\'|`)', "", raw)
        raw = re.sub(r'("""|\'\'\'|"|\'|`)$', "", raw)
        return inspect.cleandoc(raw)

    def doc_above(self, unit: Unit, start: int, end: int) -> None:
        """Comments, an ``@doc`` attribute or a docstring statement (Julia) right above the
        unit (no blank line between; attributes and decorators skipped)."""
        position = start
        comments: list[Any] = []
        while True:
            before = self.data[:position].rstrip()
            if not before or self.data[len(before) : position].count(b"\n") > 1:
                break  # the start of the file, or a blank line
            node = self.ending_at(len(before), position)
            if node is None:
                break
            text = self.node_text(node)
            if _is_comment(node):
                if text.startswith("#!") and node.start_byte == 0:
                    break  # a shebang line documents nothing
                comments.insert(0, node)
            elif re.match(r"@(type)?doc\b", text) or _is_string(node):
                literal = self.string_in(node)
                if literal is not None and not comments:
                    unit.doc_raw = text
                    unit.doc = self.string_value(literal) or None
                    unit.documented = self.text(node.start_byte, end)
                return
            elif comments or not (text.startswith(("@", "#[", "#![")) or self.is_attribute(node)):
                break
            position = node.start_byte
        if comments:
            first, last = comments[0].start_byte, comments[-1].end_byte
            unit.doc_raw = self.text(first, last).rstrip()
            unit.doc = clean_comment(unit.doc_raw) or None
            unit.documented = self.text(first, end)

    @staticmethod
    def is_statement(node: Any) -> bool:
        """A string standing alone among its parent's statements (a Julia docstring)."""
        parent = node.parent
        if (
            parent is not None
            and parent.named_child_count == 1
            and "statement" in words(parent.type)
        ):
            node, parent = parent, parent.parent
        return parent is not None and (parent.parent is None or "block" in words(parent.type))

    @staticmethod
    def is_attribute(node: Any) -> bool:
        return bool({"attribute", "annotation", "decorator", "pragma"} & set(words(node.type)))

    def ending_at(self, end: int, limit: int) -> Any:
        """The innermost comment or attribute-like node (a few lines at most: ``@spec``,
        ``#[derive]``, ``@Override``) whose text ends at byte ``end`` (give or take the
        whitespace up to ``limit``, where the unit starts: Zig's doc comments hold their line's
        end)."""
        node = self.root.named_descendant_for_byte_range(end - 1, end)
        while node is not None and node.end_byte >= end - 1:
            short = node.end_point[0] - node.start_point[0] <= 4
            if node.end_byte <= limit and _is_comment(node):
                while node.parent is not None and _is_comment(node.parent):
                    node = node.parent  # Lua's comment > comment_content
                return node
            if (
                node.end_byte <= limit
                and short
                and (self.is_attribute(node) or self.node_text(node).startswith(("@", "#[")))
            ):
                return node
            if node.end_byte <= limit and _is_string(node) and self.is_statement(node):
                return node
            if node.start_byte == 0 or node.parent is None:
                return None
            node = node.parent
        return None


_COMMENT_LINE = re.compile(r"^\s*(?:#|//|/\*|\*|--|;)")
# Comment markers of the common languages, at a line's start or end.
_OPENERS = re.compile(
    r"^\s*(?:///?!?|//|/\*\*+|/\*|\(\*\*?|\{-\s*\|?|--+\s*\|?|#+|;+|%+|\*(?!/))\s?"
)
_CLOSERS = re.compile(r"\s*(?:\*+/|\*\)|-\})\s*$")
_XML_DOC = re.compile(r"</?(?:summary|remarks|returns|para)>")


def clean_comment(raw: str) -> str:
    """The text of a comment block without its markers (``///``, ``/** */``, ``#``, ``--``)."""
    lines = []
    for line in raw.splitlines():
        line = _CLOSERS.sub("", line)
        line = _OPENERS.sub("", line)
        lines.append(_XML_DOC.sub("", line).rstrip())
    return "\n".join(lines).strip()


def walk_units(units: list[Unit]) -> list[Unit]:
    """Units and their members, depth first, in file order."""
    found = []
    for unit in units:
        found.append(unit)
        found.extend(walk_units(unit.children))
    return found


def text_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line, block)`` of a file no grammar cuts: runs of lines that start at the left
    margin and end before a blank line followed by another line at the margin (a function in
    most languages, a paragraph of a config file); blocks of one line are left out."""
    lines = text.split("\n")
    blocks: list[tuple[int, str]] = []
    start: int | None = None
    for number, line in enumerate([*lines, ""]):
        at_margin = bool(line) and not line[0].isspace()
        previous_blank = number > 0 and not lines[number - 1].strip()
        if start is not None and (number == len(lines) or (at_margin and previous_blank)):
            block = "\n".join(lines[start:number]).rstrip()
            if block.count("\n") >= 1:
                blocks.append((start + 1, block + "\n"))
            start = None
        if start is None and at_margin and number < len(lines):
            start = number
    return blocks
