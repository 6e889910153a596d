"""Read YAML keeping where every key and item came from (PyYAML node marks), at a bounded cost.

Recipes are shared between projects, so reading one must be safe whatever it holds: a file
larger than ``MAX_BYTES`` is refused before it is read, and the document is built from PyYAML's
node graph by our own walk, which counts every node it expands (an alias counts again each time
it is used) and refuses beyond ``MAX_NODES`` or deeper than ``MAX_DEPTH``. A "billion laughs"
alias bomb therefore stops after ``MAX_NODES`` steps, in milliseconds, instead of filling the
memory. Only plain YAML scalars are built (SafeLoader): a ``!!python/...`` tag is an error with
its line.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KeyPath = tuple[str | int, ...]

# A recipe is a page or two of YAML; the largest shipped one is about 2 KB.
MAX_BYTES = 1 << 20
MAX_NODES = 20_000
MAX_DEPTH = 64


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


def read_text_bounded(path: Path) -> str:
    """The text of a recipe file, refusing what is not a regular file or is too large."""
    try:
        st = os.stat(path)
    except ValueError as exc:  # a NUL byte in the name
        raise OSError(str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path} is a folder, not a recipe file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or a device would block or never end.
        raise OSError(f"{path} is not a regular file")
    if st.st_size > MAX_BYTES:
        raise YamlProblem(
            path,
            Mark(1, 1),
            f"the file is {st.st_size:,} bytes; a recipe may be at most {MAX_BYTES:,} bytes",
        )
    with path.open("rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlProblem(path, Mark(1, 1), f"a recipe may be at most {MAX_BYTES:,} bytes")
    return data.decode("utf-8")


class _Budget:
    """Counts the nodes a document expands to, so aliases cannot multiply them unboundedly."""

    def __init__(self, path: Path):
        self.path = path
        self.nodes = 0

    def spend(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlProblem(
                self.path,
                _mark(node),
                f"the document expands to more than {MAX_NODES:,} values "
                "(anchors and aliases that multiply? a recipe is a page or two of YAML)",
            )
        if depth > MAX_DEPTH:
            raise YamlProblem(
                self.path, _mark(node), f"the document nests deeper than {MAX_DEPTH} levels"
            )


def _scalar(constructor: yaml.SafeLoader, node: yaml.Node, path: Path) -> Any:
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(path, _mark(node), f"YAML: {problem}") from None
    except (ValueError, OverflowError, TypeError) as exc:
        # e.g. a date that does not exist (2024-02-31), read by PyYAML as a timestamp
        raise YamlProblem(path, _mark(node), f"YAML value cannot be read: {exc}") from None


def parse_yaml(text: str, path: Path) -> YamlDocument:
    """Parse YAML text into plain data plus a mark for every key path (bounded, see above)."""
    loader = None
    try:
        # The reader refuses control characters as soon as it is built.
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        raise YamlProblem(path, where, f"YAML syntax error: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlProblem(
            path, Mark(line, column), f"character {exc.character!r} is not allowed in YAML"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(path, Mark(1, 1), f"YAML error: {exc}") from None
    except RecursionError:
        raise YamlProblem(path, Mark(1, 1), "the document nests too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()
    marks: dict[KeyPath, Mark] = {}
    constructor = yaml.SafeLoader("")
    lines = text.splitlines()
    if root is None:
        return YamlDocument(path, None, marks, lines)
    marks[()] = _mark(root)
    budget = _Budget(path)

    def build(node: yaml.Node, at: KeyPath, depth: int) -> Any:
        budget.spend(node, depth)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlProblem(path, _mark(key_node), "keys must be plain strings")
                key = _scalar(constructor, key_node, path)
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
                result[key] = build(value_node, (*at, key), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                marks[(*at, index)] = _mark(item)
                items.append(build(item, (*at, index), depth + 1))
            return items
        return _scalar(constructor, node, path)

    return YamlDocument(path, build(root, (), 0), marks, lines)


def read_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file (see ``read_text_bounded`` and ``parse_yaml``)."""
    return parse_yaml(read_text_bounded(path), path)


def load_value(text: str) -> Any:
    """A YAML value given on the command line (``--set key=value``), at the same bounded cost."""
    return parse_yaml(text, Path("--set")).data


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(path: KeyPath) -> str:
    """`sources[0].path` style, as users read their YAML (an odd key is quoted: `x['a b']`)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"
