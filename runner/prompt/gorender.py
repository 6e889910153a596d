"""Ollama's TEMPLATE renderer, in Python: Go's text/template semantics over Ollama's values.

A generated TEMPLATE is trusted only after it renders, byte for byte, what the Jinja chat
template renders. Ollama renders with Go's ``text/template`` (ollama/ollama template/template.go:
``missingkey=zero``, ``.System`` holding every system message joined by a blank line,
``.Messages`` with consecutive messages of one role merged); Go is not on a user's machine, so
this module executes the part of the language the runner's templates use, with Go's rules:
trim markers, variable scopes (a variable declared in a block dies at its ``end``, an
assignment reaches the enclosing one), truth of empty values, ``and``/``or`` returning an
operand and stopping early, ``len``/``slice`` counting bytes, ``break``/``continue``.
Anything else (``define``, ``template``, an unknown function) is refused with
``GoTemplateError`` rather than guessed. tests/export/test_gorender.py runs every template the
runner generates through Go's own text/template (tests/go/ollama_render) and this module and
compares the outputs.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.prompt.goparse import (
    Action,
    GoTemplateError,
    If,
    Loop,
    Pipe,
    Range,
    Text,
    Tree,
    With,
    parse,
)

__all__ = ["GoTemplateError", "collate", "parse", "render_ollama"]


# Fields of Ollama's api.Message as a template sees them (template.go convertMessagesForTemplate).
MESSAGE_FIELDS = ("Role", "Content", "Thinking", "Images", "ToolCalls", "ToolName", "ToolCallID")
NO_VALUE = "<no value>"


def collate(messages: Sequence[Mapping[str, str]]) -> tuple[str, list[dict[str, Any]]]:
    """Ollama's ``collate``: all system contents joined by a blank line, and the messages with
    consecutive messages of one role merged (their contents joined by a blank line)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            system.append(m["content"])
        if out and out[-1]["Role"] == m["role"] and m["role"] != "tool":
            out[-1]["Content"] += "\n\n" + m["content"]
        else:
            message: dict[str, Any] = dict.fromkeys(MESSAGE_FIELDS, "")
            message.update(Role=m["role"], Content=m["content"], Images=[], ToolCalls=[])
            out.append(message)
    return "\n\n".join(system), out


def render_ollama(
    template: str, messages: Sequence[Mapping[str, str]], today: _dt.date | None = None
) -> str:
    """What Ollama's server renders for a chat of ``messages`` with a ``.Messages`` TEMPLATE."""
    system, collated = collate(messages)
    tree = parse(template)
    if "messages" not in tree.identifiers:
        raise GoTemplateError("the template does not use .Messages (legacy templates unsupported)")
    values = {
        "System": system,
        "Messages": [_Message(m) for m in collated],
        "Tools": None,
        "Response": "",
        "Think": False,
        "ThinkLevel": "",
        "IsThinkSet": False,
    }
    return execute(tree, values, today=today)


@dataclass
class _Message:
    """A message as a struct: unknown fields are an error, as on Go's api.Message."""

    fields: dict[str, Any]

    def get(self, name: str) -> Any:
        if name not in self.fields:
            raise GoTemplateError(f"can't evaluate field {name} in type *api.Message")
        return self.fields[name]


# --- execution --------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, root: Any, today: _dt.date | None) -> None:
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []
        self.today = today or _dt.date.today()

    def lookup(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise GoTemplateError(f"undefined variable: {name}")

    def set(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise GoTemplateError(f"undefined variable: {name}")


def execute(tree: Tree, root: Any, today: _dt.date | None = None) -> str:
    state = _State(root, today)
    try:
        _walk(tree.nodes, root, state)
    except (_Break, _Continue):
        raise GoTemplateError("break or continue outside range") from None
    except RecursionError:
        raise GoTemplateError("template too deeply nested") from None
    return "".join(state.out)


def _walk(nodes: list[Any], dot: Any, state: _State) -> None:
    for node in nodes:
        if isinstance(node, Text):
            state.out.append(node.text)
        elif isinstance(node, Action):
            value = _pipe(node.pipe, dot, state)
            if not node.pipe.decl:
                state.out.append(_print(value))
        elif isinstance(node, If | With):
            mark = len(state.vars)
            value = _pipe(node.pipe, dot, state)
            if truth(value):
                _walk(node.body, value if isinstance(node, With) else dot, state)
            elif node.orelse is not None:
                _walk(node.orelse, dot, state)
            del state.vars[mark:]
        elif isinstance(node, Range):
            _range(node, dot, state)
        elif isinstance(node, Loop):
            raise _Break() if node.kind == "break" else _Continue()
        else:  # pragma: no cover - parse() builds only the types above
            raise GoTemplateError(f"unknown node {node!r}")


def _range(node: Range, dot: Any, state: _State) -> None:
    mark = len(state.vars)
    pipe = Pipe([], False, node.pipe.cmds)
    value = _pipe(pipe, dot, state)
    if value is None:
        items: list[tuple[Any, Any]] = []
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    elif isinstance(value, Mapping):
        items = sorted(value.items())
    else:
        raise GoTemplateError(f"range can't iterate over {value!r}")
    if not items:
        if node.orelse is not None:
            _walk(node.orelse, dot, state)
        del state.vars[mark:]
        return
    for key, elem in items:
        names = node.pipe.decl
        if len(names) == 1:
            state.vars.append((names[0], elem))
        elif len(names) == 2:
            state.vars.extend([(names[0], key), (names[1], elem)])
        inner = len(state.vars)
        try:
            _walk(node.body, elem, state)
        except _Continue:
            pass
        except _Break:
            del state.vars[mark:]
            return
        del state.vars[inner:]
        del state.vars[mark:]
    del state.vars[mark:]


def _pipe(pipe: Pipe, dot: Any, state: _State) -> Any:
    value: Any = _NOTHING
    for cmd in pipe.cmds:
        value = _command(cmd, dot, state, value)
    if pipe.decl:
        if len(pipe.decl) != 1:
            raise GoTemplateError("multiple variables outside range")
        if pipe.assign:
            state.set(pipe.decl[0], value)
        else:
            state.vars.append((pipe.decl[0], value))
    return value


_NOTHING = object()


def _command(words: list[Any], dot: Any, state: _State, piped: Any) -> Any:
    args = _operands(words, dot, state)
    head = args[0]
    if isinstance(head, _Func):
        rest = args[1:] + ([] if piped is _NOTHING else [piped])
        if head.name not in ("and", "or"):
            rest = [_force(a) for a in rest]
        return _force(head.call_fn(rest, state))
    if len(args) > 1 or piped is not _NOTHING:
        raise GoTemplateError(f"can't give arguments to a non-function {words[0]!r}")
    return _force(head)


@dataclass
class _Func:
    name: str
    call_fn: Callable[..., Any]


@dataclass
class _Lazy:
    thunk: Callable[[], Any]

    def value(self) -> Any:
        return self.thunk()


def _operands(words: list[Any], dot: Any, state: _State) -> list[Any]:
    out: list[Any] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "(":
            depth, j = 1, i + 1
            while depth:
                if j >= len(words):
                    raise GoTemplateError("unbalanced parentheses")
                depth += {"(": 1, ")": -1}.get(words[j], 0) if isinstance(words[j], str) else 0
                j += 1
            inner = words[i + 1 : j - 1]
            sub = Pipe([], False, _split_cmds(inner))
            captured = (sub, dot)
            value = _Lazy(lambda c=captured: _pipe(c[0], c[1], state))
            # A field chain after the parenthesis: (x).Field
            if j < len(words) and isinstance(words[j], str) and words[j].startswith("."):
                chain = words[j]
                base = value
                value = _Lazy(lambda b=base, c=chain: _fields(b.value(), c, state))
                j += 1
            out.append(value)
            i = j
            continue
        if isinstance(w, tuple):
            out.append(w[1])
        elif w in _FUNCS:
            if out:  # a function as an argument is called without arguments
                out.append(_Lazy(lambda f=_FUNCS[w]: f([], state)))
            else:
                out.append(_Func(w, _FUNCS[w]))
        elif w == ".":
            out.append(dot)
        elif w.startswith("."):
            out.append(_Lazy(lambda c=w: _fields(dot, c, state)))
        elif w.startswith("$"):
            name, _, chain = w.partition(".")
            out.append(
                _Lazy(lambda n=name, c=chain: _fields(state.lookup(n), "." + c if c else "", state))
            )
        elif w in ("true", "false"):
            out.append(w == "true")
        elif w == "nil":
            out.append(None)
        elif re.fullmatch(r"-?\d+", w):
            out.append(int(w))
        else:
            raise GoTemplateError(f"function {w!r} not defined")
        i += 1
    return out


def _split_cmds(words: list[Any]) -> list[list[Any]]:
    cmds, current, depth = [], [], 0
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
    return cmds


def _fields(value: Any, chain: str, state: _State) -> Any:
    for name in [p for p in chain.split(".") if p]:
        value = _force(value)
        if isinstance(value, _Message):
            value = value.get(name)
        elif isinstance(value, Mapping):
            value = value.get(name)  # missingkey=zero: an interface map gives nil
        elif value is None:
            raise GoTemplateError(f"nil pointer evaluating .{name}")
        else:
            raise GoTemplateError(f"can't evaluate field {name} in {type(value).__name__}")
    return value


def _force(value: Any) -> Any:
    return value.value() if isinstance(value, _Lazy) else value


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, slices and maps are false."""
    value = _force(value)
    if value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _print(value: Any) -> str:
    value = _force(value)
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise GoTemplateError(f"printing a {type(value).__name__} is not supported")


def _basic(value: Any) -> Any:
    value = _force(value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    raise GoTemplateError(f"can't compare a {type(value).__name__}")


def _eq(args: list[Any], state: _State) -> bool:
    if len(args) < 2:
        raise GoTemplateError("missing argument for comparison")
    first = _basic(args[0])
    for other in args[1:]:
        value = _basic(other)
        if type(first) is not type(value) and not (
            isinstance(first, int) and isinstance(value, int)
        ):
            raise GoTemplateError("incompatible types for comparison")
        if first == value:
            return True
    return False


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[list[Any], _State], bool]:
    def run(args: list[Any], state: _State) -> bool:
        if len(args) != 2:
            raise GoTemplateError("comparison takes two arguments")
        a, b = _basic(args[0]), _basic(args[1])
        if type(a) is not type(b) or a is None:
            raise GoTemplateError("incompatible types for comparison")
        return op(a, b)

    return run


def _and(args: list[Any], state: _State) -> Any:
    if not args:
        raise GoTemplateError("and needs arguments")
    for a in args:
        value = _force(a)
        if not truth(value):
            return value
    return value


def _or(args: list[Any], state: _State) -> Any:
    if not args:
        raise GoTemplateError("or needs arguments")
    for a in args:
        value = _force(a)
        if truth(value):
            return value
    return value


def _not(args: list[Any], state: _State) -> bool:
    if len(args) != 1:
        raise GoTemplateError("not takes one argument")
    return not truth(args[0])


def _len(args: list[Any], state: _State) -> int:
    if len(args) != 1:
        raise GoTemplateError("len takes one argument")
    value = _force(args[0])
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list | tuple | dict):
        return len(value)
    raise GoTemplateError(f"len of {type(value).__name__}")


def _index_args(args: list[Any]) -> list[int]:
    out = []
    for a in args:
        v = _force(a)
        if not isinstance(v, int) or isinstance(v, bool):
            raise GoTemplateError("index must be an integer")
        out.append(v)
    return out


def _slice(args: list[Any], state: _State) -> Any:
    if not args:
        raise GoTemplateError("slice needs an argument")
    value = _force(args[0])
    bounds = _index_args(args[1:])
    if len(bounds) > 2:
        raise GoTemplateError("slice with three indexes is not supported")
    if isinstance(value, str):
        data: Any = value.encode("utf-8")
    elif isinstance(value, list | tuple):
        data = list(value)
    else:
        raise GoTemplateError(f"can't slice a {type(value).__name__}")
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(data)
    if not 0 <= lo <= hi <= len(data):
        raise GoTemplateError(f"slice index out of range: {lo}:{hi}")
    part = data[lo:hi]
    if isinstance(part, bytes):
        try:
            return part.decode("utf-8")
        except UnicodeDecodeError:
            raise GoTemplateError("slicing inside a UTF-8 character is not supported") from None
    return part


def _index(args: list[Any], state: _State) -> Any:
    if not args:
        raise GoTemplateError("index needs an argument")
    value = _force(args[0])
    for i in _index_args(args[1:]):
        if isinstance(value, list | tuple):
            if not 0 <= i < len(value):
                raise GoTemplateError(f"index out of range: {i}")
            value = value[i]
        else:
            raise GoTemplateError(f"can't index a {type(value).__name__}")
    return value


def _printf(args: list[Any], state: _State) -> str:
    if not args:
        raise GoTemplateError("printf needs a format")
    fmt = _force(args[0])
    values = [_force(a) for a in args[1:]]
    if not isinstance(fmt, str):
        raise GoTemplateError("printf's format must be a string")
    out, i = [], 0
    parts = re.split(r"(%[sdv%])", fmt)
    for part in parts:
        if part == "%%":
            out.append("%")
        elif part in ("%s", "%d", "%v"):
            if i >= len(values):
                raise GoTemplateError("printf: missing argument")
            out.append(_print(values[i]))
            i += 1
        elif "%" in part:
            raise GoTemplateError(f"printf verb in {part!r} is not supported")
        else:
            out.append(part)
    if i != len(values):
        raise GoTemplateError("printf: extra arguments")
    return "".join(out)


def _print_fn(args: list[Any], state: _State) -> str:
    values = [_force(a) for a in args]
    # fmt.Sprint adds spaces between operands when neither is a string.
    out = []
    for i, v in enumerate(values):
        if i and not isinstance(v, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(_print(v))
    return "".join(out)


def _current_date(args: list[Any], state: _State) -> str:
    return state.today.strftime("%Y-%m-%d")


_FUNCS: dict[str, Callable[[list[Any], _State], Any]] = {
    "and": _and,
    "or": _or,
    "not": _not,
    "eq": _eq,
    "ne": lambda args, state: not _eq(args, state),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "len": _len,
    "slice": _slice,
    "index": _index,
    "printf": _printf,
    "print": _print_fn,
    "currentDate": _current_date,
}
