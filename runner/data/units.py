"""Code units (functions, classes, methods) cut from a file with tree-sitter, with their docs.

A unit knows its code, its documentation (Python docstring, or the ``///`` / ``/** */`` comment
block right above it), the code without that documentation, its signature, and whether its part
of the tree parsed cleanly, so that extractors can build tasks and the syntax filter can judge a
unit without parsing it again.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from runner.data.languages import has_parser, parser_for


@dataclass
class Unit:
    name: str
    kind: str
    language: str
    code: str  # the unit as written (Python: with its docstring; others: without the doc comment)
    start_line: int
    end_line: int
    doc: str | None = None  # documentation as plain text
    doc_raw: str | None = None  # documentation as written in the source
    code_without_doc: str = ""
    signature: str = ""  # the code before the body ("def f(x):", "pub fn f() void")
    has_error: bool = False
    children: list[Unit] = field(default_factory=list)

    @property
    def documented_code(self) -> str:
        """The unit with its documentation, as it stands in the file."""
        if self.language == "python" or not self.doc_raw:
            return self.code
        return f"{self.doc_raw}\n{self.code}"


# Per language: node types that are units, node types holding members, wrapper node types.
UNIT_TYPES: dict[str, dict[str, str]] = {
    "python": {"function_definition": "function", "class_definition": "class"},
    "javascript": {
        "function_declaration": "function",
        "generator_function_declaration": "function",
        "class_declaration": "class",
        "method_definition": "method",
    },
    "rust": {
        "function_item": "function",
        "struct_item": "struct",
        "enum_item": "enum",
        "trait_item": "trait",
        "impl_item": "impl",
        "mod_item": "module",
    },
    "zig": {"function_declaration": "function", "test_declaration": "test"},
}
UNIT_TYPES["typescript"] = {
    **UNIT_TYPES["javascript"],
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
}
UNIT_TYPES["tsx"] = UNIT_TYPES["typescript"]
CONTAINERS = {
    "class_body",
    "declaration_list",
    "block",
    "struct_declaration",
    "enum_declaration",
    "union_declaration",
    "decorated_definition",
    "export_statement",
}
ZIG_CONTAINERS = {
    "struct_declaration": "struct",
    "enum_declaration": "enum",
    "union_declaration": "union",
}


@functools.lru_cache(maxsize=8)
def _parse(text: str, language: str) -> tuple[bytes, Any]:
    """The file's bytes and tree-sitter tree; cached so several extractors share one parse."""
    data = text.encode("utf-8")
    return data, parser_for(language).parse(data)


@functools.lru_cache(maxsize=8)
def parse_units(text: str, language: str) -> tuple[list[Unit], bool]:
    """The top-level units of a file (members nested in ``children``) and whether the file
    as a whole parsed without error. Cached so several extractors share one parse."""
    if not has_parser(language):
        return [], True
    data, tree = _parse(text, language)
    cutter = _Cutter(data, language)
    return cutter.units_in(tree.root_node), not tree.root_node.has_error


def unit_start_lines(text: str, language: str) -> tuple[list[int], bool]:
    """0-based first lines of the top-level units (``parse_units``' units, without building
    them: no docstrings, members or signatures) and whether the file parsed without error.
    Whole-file extractors need only these, to prefer cutting long files between units."""
    if not has_parser(language):
        return [], True
    data, tree = _parse(text, language)
    cutter = _Cutter(data, language)
    starts = [
        child.start_point[0]
        for child in tree.root_node.named_children
        if cutter.kind_of(child) is not None
    ]
    return starts, not tree.root_node.has_error


class _Cutter:
    def __init__(self, data: bytes, language: str):
        self.data = data
        self.language = language
        self.types = UNIT_TYPES[language]

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", "replace")

    def units_in(self, node: Any) -> list[Unit]:
        units = []
        for child in node.named_children:
            unit = self.unit_of(child)
            if unit is not None:
                units.append(unit)
        return units

    @staticmethod
    def inner_of(node: Any) -> Any:
        # Wrappers: `@decorator def`, `export function`, `export const f = () =>`.
        if node.type in ("decorated_definition", "export_statement"):
            return (
                node.child_by_field_name("definition")
                or node.child_by_field_name("declaration")
                or (node.named_children[-1] if node.named_children else node)
            )
        return node

    def kind_of(self, node: Any) -> str | None:
        """What ``unit_of(node)`` would make of ``node`` (its kind), None when not a unit."""
        inner = self.inner_of(node)
        return self.types.get(inner.type) or self.declared_unit(inner)[0]

    def unit_of(self, node: Any) -> Unit | None:
        outer = node
        inner = self.inner_of(node)
        kind = self.types.get(inner.type)
        name_node = inner.child_by_field_name("name")
        body = inner.child_by_field_name("body")
        if kind is None:
            kind, name_node, body = self.declared_unit(inner)
            if kind is None:
                return None
        if inner.type == "impl_item":
            name_node = inner.child_by_field_name("type")
        name = self.text(name_node.start_byte, name_node.end_byte) if name_node else kind
        if kind == "test" and name_node is None:
            strings = [c for c in inner.named_children if c.type in ("string", "identifier")]
            name = self.text(strings[0].start_byte, strings[0].end_byte) if strings else "test"
        unit = Unit(
            name=name.strip('"'),
            kind=kind,
            language=self.language,
            code=self.text(outer.start_byte, outer.end_byte),
            start_line=outer.start_point[0] + 1,
            end_line=outer.end_point[0] + 1,
            has_error=outer.has_error,
        )
        body_start = body.start_byte if body is not None else outer.end_byte
        if self.language == "python":
            self.python_doc(unit, outer, body)
        else:
            self.comment_doc(unit, outer)
        unit.signature = self.text(outer.start_byte, body_start).rstrip()
        if body is not None and kind not in ("function", "method", "test"):
            unit.children = [u for u in self.members(body) if u is not None]
        return unit

    def members(self, body: Any) -> list[Unit | None]:
        found: list[Unit | None] = []
        for child in body.named_children:
            unit = self.unit_of(child)
            if unit is not None:
                found.append(unit)
            elif child.type in CONTAINERS:
                found.extend(self.members(child))
        return found

    def declared_unit(self, node: Any) -> tuple[str | None, Any, Any]:
        """`const f = () => {}` (JS/TS) and `const S = struct {...}` (Zig) are units too."""
        if node.type in ("lexical_declaration", "variable_declaration"):
            for declarator in node.named_children:
                value = declarator.child_by_field_name("value")
                if value is not None and value.type in (
                    "arrow_function",
                    "function_expression",
                    "function",
                ):
                    return (
                        "function",
                        declarator.child_by_field_name("name"),
                        value.child_by_field_name("body"),
                    )
            if self.language == "zig":
                names = [c for c in node.named_children if c.type == "identifier"]
                for child in node.named_children:
                    if child.type in ZIG_CONTAINERS and names:
                        return ZIG_CONTAINERS[child.type], names[0], child
        return None, None, None

    def python_doc(self, unit: Unit, outer: Any, body: Any) -> None:
        unit.code_without_doc = unit.code
        if body is None or not body.named_children:
            return
        first = body.named_children[0]
        if first.type != "expression_statement" or not first.named_children:
            return
        literal = first.named_children[0]
        if literal.type != "string":
            return
        raw = self.text(literal.start_byte, literal.end_byte)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("\"'rbuRBU")
        if not isinstance(value, str) or not value.strip():
            return
        unit.doc = inspect.cleandoc(value)
        unit.doc_raw = raw
        # Cut the docstring's whole lines out of the code.
        line_start = self.data.rfind(b"\n", 0, first.start_byte) + 1
        line_end = self.data.find(b"\n", first.end_byte)
        line_end = len(self.data) if line_end < 0 else line_end + 1
        unit.code_without_doc = (
            self.text(outer.start_byte, line_start) + self.text(line_end, outer.end_byte)
        ).rstrip()

    def comment_doc(self, unit: Unit, outer: Any) -> None:
        unit.code_without_doc = unit.code
        comments = []
        sibling = outer.prev_sibling
        while sibling is not None and sibling.type in (
            "comment",
            "line_comment",
            "block_comment",
            "attribute_item",
        ):
            if sibling.type == "attribute_item":
                sibling = sibling.prev_sibling
                continue
            text = self.text(sibling.start_byte, sibling.end_byte)
            if not _is_doc_comment(text):
                break
            # Only a comment block that touches the unit (no blank line in between).
            gap = self.text(sibling.end_byte, (comments[0] if comments else outer).start_byte)
            if gap.count("\n") > 1:
                break
            comments.insert(0, sibling)
            sibling = sibling.prev_sibling
        if not comments:
            return
        raw = self.text(comments[0].start_byte, comments[-1].end_byte)
        indent = self.text(
            self.data.rfind(b"\n", 0, comments[0].start_byte) + 1, comments[0].start_byte
        )
        unit.doc_raw = raw if not indent.strip() else raw
        unit.doc = clean_comment(raw) or None


def _is_doc_comment(text: str) -> bool:
    return text.startswith(("///", "/**", "//!")) and not text.startswith("////")


_COMMENT_MARKS = re.compile(r"^\s*(///?!?|/\*\*+|\*+/|\*(?!/))\s?")


def clean_comment(raw: str) -> str:
    """The text of a ``///`` or ``/** */`` comment block without its markers."""
    lines = []
    for line in raw.splitlines():
        line = line.strip()
        if line.endswith("*/"):
            line = line[:-2]
        lines.append(_COMMENT_MARKS.sub("", line).rstrip())
    return "\n".join(lines).strip()


def walk_units(units: list[Unit]) -> list[Unit]:
    """Units and their members, depth first, in file order."""
    found = []
    for unit in units:
        found.append(unit)
        found.extend(walk_units(unit.children))
    return found
