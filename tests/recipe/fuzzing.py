"""Mutated shipped recipes for the loader fuzzer (``test_fuzz.py``, and ``make bench`` at scale).

Each case takes one recipe under ``recipes/`` and mutates it the ways a hand-edited or
corrupted file does: keys dropped, added or renamed, values swapped for another type, odd
strings (NUL bytes, over-long names, paths that climb out), odd bytes and truncations in the
text. The harness runs ``recipe validate`` on it in-process and records what happened: the exit
status, and whether the output is what a user must see (every error names the file) or a
Python traceback.
"""

from __future__ import annotations

import io
import os
import shutil
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
    for p in sorted((ROOT / "recipes").rglob("*.yaml"))
}

ODD_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "a" * 300,
    "d/" * 2100,
    "../../../../etc/passwd",
    "~",
    "/",
    ".",
    "tiny:nope",
    "tiny:qwen2",
    "Qwen/Qwen2.5-Coder-7B-Instruct",
    "org/name/extra",
    "!!python/object:os.system",
    "{{ meta.version }}",
    "{% raw %}",
    "(",
    "\ud800",
    "é\u202e",
    "true",
    "1e999",
    "-0",
]
TYPE_NAMES = [
    "repo",
    "docs",
    "conversations",
    "instructions",
    "agent_logs",
    "hf_dataset",
    "length",
    "regex",
    "near_dedupe",
    "secrets",
    "syntax",
    "merge",
    "gguf",
    "lora_gguf",
    "ollama",
    "hub",
    "stops",
    "command",
    "file_completion",
    "explain_code",
    "nope",
]
KEY_NAMES = ["type", "path", "name", "extends", "recipe", "enabled", "from", "in", "x", "epocs"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(ODD_STRINGS),
    st.sampled_from(TYPE_NAMES),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEY_NAMES), st.text(max_size=8)), inner, max_size=4
        ),
    ),
    max_leaves=8,
)


def _paths(node: Any, at: tuple = ()) -> list[tuple]:
    found = [at]
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(_paths(child, (*at, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(_paths(child, (*at, index)))
    return found


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_data(draw: Any, data: Any) -> Any:
    """One structural mutation of parsed recipe data."""
    paths = _paths(data)
    path = draw(st.sampled_from(paths))
    op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "retype", "duplicate"]))
    if not path:
        return draw(values) if op == "replace" else data
    parent, last = _get(data, path[:-1]), path[-1]
    current = parent[last]
    if op == "replace":
        parent[last] = draw(values)
    elif op == "delete":
        del parent[last]
    elif op == "add":
        target = current if isinstance(current, dict) else parent
        if isinstance(target, dict):
            target[draw(st.one_of(st.sampled_from(KEY_NAMES), st.text(max_size=8)))] = draw(values)
        elif isinstance(target, list):
            target.append(draw(values))
    elif op == "wrap":
        parent[last] = [current]
    elif op == "retype":
        parent[last] = str(current) if not isinstance(current, str) else draw(scalars)
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(current)
    return data


@st.composite
def mutated_text(draw: Any, text: str) -> str:
    """One textual mutation: odd characters, a cut, a repeated or replaced line."""
    op = draw(st.sampled_from(["insert", "cut", "line", "truncate"]))
    position = draw(st.integers(min_value=0, max_value=len(text)))
    if op == "insert":
        odd = draw(
            st.one_of(
                st.text(min_size=1, max_size=6),
                st.sampled_from(["\x00", ":", "&a", "*a", "!!", "- ", "{", "["]),
            )
        )
        return text[:position] + odd + text[position:]
    if op == "cut":
        end = draw(st.integers(min_value=position, max_value=min(len(text), position + 40)))
        return text[:position] + text[end:]
    if op == "truncate":
        return text[:position]
    lines = text.splitlines()
    if not lines:
        return text
    index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    lines[index] = draw(st.one_of(st.just(lines[index] * 2), st.text(max_size=30)))
    return "\n".join(lines) + "\n"


@st.composite
def mutated_recipe(draw: Any) -> tuple[str, str]:
    """(shipped recipe's path relative to the repository, mutated text)."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    text = SHIPPED[name]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if draw(st.booleans()):
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:  # an earlier textual mutation broke the YAML
                continue
            data = draw(mutated_data(data))
            try:
                text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
            except yaml.YAMLError:
                continue
        else:
            text = draw(mutated_text(text))
    return name, text


@dataclass
class Result:
    status: int | None
    output: str
    crashed: bool  # a Python exception escaped: a traceback a user would see

    def problem(self) -> str | None:
        """What is wrong with this result, or None."""
        if self.crashed:
            return "traceback:\n" + self.output
        if self.status not in (0, 2):
            return f"exit status {self.status}:\n{self.output}"
        if self.status == 2:
            errors = [
                line
                for line in self.output.splitlines()
                if line and not line.startswith(" ") and not line.endswith(" in recipe")
            ]
            if not errors:
                return "exit 2 without an error message:\n" + self.output
            unnamed = [e for e in errors if not names_a_file(e)]
            if unnamed:
                return "errors that name no file:\n" + "\n".join(unnamed)
        return None


def names_a_file(line: str) -> bool:
    """An error line starts with the recipe file it is about (``x.yaml:3:5: ...``)."""
    where = line.split(": ", 1)[0].split(":", 1)[0]
    return where.endswith((".yaml", ".yml")) or where == "--set"


def workspace(root: Path) -> Path:
    """A copy of the repository's layout for mutated recipes: the recipes folder (so that
    `extends:` between them works) and a link to the datasets they read."""
    if not (root / "datasets").exists():
        os.symlink(ROOT / "datasets", root / "datasets")
        shutil.copytree(ROOT / "recipes", root / "recipes")
    return root


def validate(root: Path, name: str, text: str) -> Result:
    """Write ``text`` over ``name`` in the workspace, run `recipe validate` in-process, restore."""
    from runner.cli import main

    path = root / name
    original = SHIPPED[name]
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            status = main(["validate", str(path)])
        return Result(status, err.getvalue() + out.getvalue(), False)
    except SystemExit as exc:
        return Result(int(exc.code or 0), err.getvalue(), False)
    except BaseException:  # noqa: BLE001 - the point is to catch whatever escapes
        return Result(None, traceback.format_exc(), True)
    finally:
        path.write_text(original, encoding="utf-8")
