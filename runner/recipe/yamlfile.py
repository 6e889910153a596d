"""Read YAML keeping where every key and item came from (PyYAML node marks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class YamlDocument:
    path: Path
    data: Any
    marks: dict[KeyPath, Mark]  # key path -> where its key (or list item) starts
    lines: list[str]


class YamlProblem(Exception):
    def __init__(self, path: Path, mark: Mark, message: str):
        super().__init__(message)
        self.path = path
        self.mark = mark
        self.message = message


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def read_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file into plain data plus a mark for every key path."""
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        raise YamlProblem(path, where, f"YAML syntax error: {exc.problem or exc}") from None
    finally:
        loader.dispose()
    marks: dict[KeyPath, Mark] = {}
    constructor = yaml.SafeLoader("")
    if root is None:
        return YamlDocument(path, None, marks, text.splitlines())
    marks[()] = _mark(root)

    def build(node: yaml.Node, at: KeyPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if key == "<<":
                    raise YamlProblem(
                        path,
                        _mark(key_node),
                        "YAML merge keys (<<) are not supported; use extends:",
                    )
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise YamlProblem(path, _mark(key_node), f"keys must be strings, not {key!r}")
                key = str(key)
                if key in result:
                    first = marks[(*at, key)]
                    raise YamlProblem(
                        path,
                        _mark(key_node),
                        f"duplicate key '{key}' (first set on line {first.line})",
                    )
                marks[(*at, key)] = _mark(key_node)
                result[key] = build(value_node, (*at, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                marks[(*at, index)] = _mark(item)
                items.append(build(item, (*at, index)))
            return items
        return constructor.construct_object(node, deep=True)

    return YamlDocument(path, build(root, ()), marks, text.splitlines())


def dotted(path: KeyPath) -> str:
    """`sources[0].path` style, as users read their YAML."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
