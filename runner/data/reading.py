"""Reading input files so that every problem becomes a reported rejection with file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.data.outcome import Rejection, bad_input


class BadFile(Exception):
    """A whole file could not be used (unreadable, undecodable); carries the rejection."""

    def __init__(self, rejection: Rejection):
        super().__init__(rejection.detail)
        self.rejection = rejection


def display_path(path: Path, root: Path | None) -> str:
    """The path as reports show it: relative to the source root when possible."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def read_text(path: Path, stage: str, shown: str) -> str:
    """The file's text as UTF-8 (a BOM is dropped); raises ``BadFile`` naming the problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadFile(
            bad_input(stage, "unreadable file", exc.strerror or str(exc), shown)
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadFile(
            bad_input(stage, "undecodable text", f"not UTF-8 at byte {exc.start}", shown, line)
        ) from None


def iter_json_records(path: Path, stage: str, shown: str) -> Iterator[tuple[int, Any] | Rejection]:
    """Records of a JSON or JSONL file as ``(line, value)``; a bad line yields a ``Rejection``.

    ``.jsonl`` files give one record per non-blank line. ``.json`` files hold one record, a list
    of records, or an object whose single list-valued key (``data``, ``examples``...) holds them;
    the line of each record is found by a cheap scan so that errors still point into the file.
    """
    try:
        text = read_text(path, stage, shown)
    except BadFile as exc:
        yield exc.rejection
        return
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield bad_input(
                    stage,
                    "malformed JSON",
                    exc.msg + f" (column {exc.colno})",
                    shown,
                    number,
                    raw=line,
                )
        return
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        yield bad_input(
            stage, "malformed JSON", f"{exc.msg} (column {exc.colno})", shown, exc.lineno
        )
        return
    records = _records_of(value)
    starts = _record_lines(text, len(records)) if isinstance(value, list | dict) else []
    for index, record in enumerate(records):
        yield (starts[index] if index < len(starts) else 1), record


def _records_of(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        looks_like_record = any(not isinstance(v, list | dict) for v in value.values())
        if len(lists) == 1 and not looks_like_record:
            return lists[0]
    return [value]


def _record_lines(text: str, count: int) -> list[int]:
    """Line numbers where the top-level records of a JSON array (or wrapped array) start."""
    starts: list[int] = []
    depth = 0
    in_string = escaped = False
    line = 1
    target = None  # depth at which records open
    for char in text:
        if char == "\n":
            line += 1
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if char == "[" and target is None:
                target = depth + 1
            elif char == "{" and depth == target:
                starts.append(line)
                if len(starts) == count:
                    break
        elif char in "]}":
            depth -= 1
    return starts or [1]


def dotted(record: Any, path: str) -> Any:
    """``record["a"]["b"]`` for ``a.b``; raises ``KeyError(path)`` when a part is missing."""
    node = record
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def copy_metadata(record: Any, fields: list[str], into: dict[str, Any]) -> list[str]:
    """Copy dotted ``fields`` of ``record`` into ``into``; objects are merged whole.

    Returns the fields that were missing, so the caller can report them.
    """
    missing = []
    for name in fields:
        try:
            value = dotted(record, name)
        except KeyError:
            missing.append(name)
            continue
        if isinstance(value, dict):
            into.update(value)
        else:
            into[name.rsplit(".", 1)[-1]] = value
    return missing
