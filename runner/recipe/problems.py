"""Recipe problems in the user's words: pydantic's errors turned into key paths and messages,
then into `FILE:LINE:COL: key.path: message` lines with the offending line under them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import UserError
from runner.recipe.yamlfile import KeyPath
from runner.registry import did_you_mean

if TYPE_CHECKING:
    from runner.recipe.walk import Location


@dataclass(frozen=True)
class Problem:
    """One mistake in a recipe, located by key path (the loader turns it into file:line)."""

    path: KeyPath
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a recipe file and line, or a ``--set`` override."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


# The offending line is shown under each error, cut to this many characters.
SOURCE_LINE_CHARS = 160


@dataclass(frozen=True)
class Located:
    file: str  # a recipe file, or "--set"
    line: int
    column: int
    key: str
    message: str
    source_line: str | None = None
    warning: bool = False

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        prefix = "warning: " if self.warning else ""
        text = f"{where}: {prefix}{self.key}: {self.message}"
        if self.source_line is not None:
            shown = self.source_line
            if len(shown) > SOURCE_LINE_CHARS:
                shown = shown[:SOURCE_LINE_CHARS] + f"... ({len(shown):,} characters)"
            text += f"\n    {self.line:>4} | {shown}"
        return text


class RecipeErrors(UserError):
    """Every error found in a recipe, reported at once."""

    def __init__(self, problems: list[Located]):
        self.problems = problems
        count = len(problems)
        lines = [p.render() for p in problems]
        lines.append(f"{count} error{'s' if count != 1 else ''} in recipe")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:
        return self.args[0]


# -- pydantic's errors, in the user's words ----------------------------------------------------

_BOUNDS = {
    "greater_than": ("gt", "{value} is less than or equal to the minimum of {bound}"),
    "greater_than_equal": ("ge", "{value} is less than the minimum of {bound}"),
    "less_than": ("lt", "{value} is greater than or equal to the maximum of {bound}"),
    "less_than_equal": ("le", "{value} is greater than the maximum of {bound}"),
}


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python's int_max_str_digits)
        return f"a {value.bit_length()}-bit number" if isinstance(value, int) else "the value"
    return text if len(text) <= 80 else f"{text[:77]}... ({len(text):,} characters)"


def translate(root: type, errors: list[dict[str, Any]], document: Any) -> list[Problem]:
    """Every pydantic error of ``document`` as a ``Problem`` at the user's key path, in order,
    each message once (a value that fits no member of a union is reported once)."""
    from runner.recipe.walk import locate

    problems: dict[tuple[KeyPath, str], Problem] = {}
    for error in errors:
        where = locate(root, tuple(error["loc"]), document)
        for problem in _explain(error, where):
            problems.setdefault((problem.path, problem.message), problem)
    return list(problems.values())


def _tag_key(where: Location) -> str:
    """The key that names a union's member: `type:` in recipes, `backend:` in compute profiles."""
    return (where.node.discriminator if where.node is not None else None) or "type"


def _explain(error: dict[str, Any], where: Location) -> Iterator[Problem]:
    from runner.recipe.walk import allowed_keys, describe, union_kind, union_tags

    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    path = where.path
    if where.in_union:
        yield Problem(path, f"{_show(value)} is not valid here: expected {describe(where.union)}")
        return
    if kind == "missing":
        yield Problem(path[:-1], f"'{path[-1]}' is required")
    elif kind == "extra_forbidden":
        key = str(path[-1])
        yield Problem(path, f"unknown key {key!r}{did_you_mean(key, allowed_keys(where.parent))}")
    elif kind == "union_tag_invalid":
        label = union_kind(where.node)
        tags = union_tags(where.node)
        tag_key = _tag_key(where)
        tag = value.get(tag_key) if isinstance(value, dict) else ctx.get("tag")
        if not isinstance(tag, str):
            yield Problem(
                (*path, tag_key),
                f"must be one {label} name, not {_show(tag)} (known: {', '.join(tags)})",
            )
            return
        yield Problem(
            (*path, tag_key),
            f"{_show(tag)} is not a known {label}{did_you_mean(tag, tags)} "
            f"(known: {', '.join(tags)})",
        )
    elif kind == "union_tag_not_found":
        tags = ", ".join(union_tags(where.node))
        yield Problem(path, f"missing `{_tag_key(where)}:`; one of: {tags}")
    elif kind in ("model_type", "model_attributes_type", "dict_type") and where.node is not None:
        if where.node.discriminator is not None:
            label = union_kind(where.node)
            yield Problem(path, f"must be a mapping with a `{_tag_key(where)}:` ({label})")
        else:
            yield Problem(path, f"{_show(value)} is not valid here: expected a mapping")
    elif kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        yield Problem(path, text.format(value=_show(value), bound=ctx.get(key)))
    elif kind == "too_short":
        least = ctx.get("min_length", 1)
        if isinstance(value, list | tuple) and len(value) >= least:
            return  # pydantic counts only the items that validated: theirs are the errors
        yield Problem(
            path, "needs at least one entry" if least == 1 else f"needs at least {least} entries"
        )
    elif kind == "string_pattern_mismatch":
        yield Problem(path, f"{_show(value)} does not match the pattern {ctx.get('pattern')}")
    elif kind in ("value_error", "assertion_error"):
        yield Problem(path, str(ctx.get("error", error["msg"])))
    elif kind == "literal_error" or kind.endswith(("_type", "_parsing", "_from_float")):
        yield Problem(path, f"{_show(value)} is not valid here: expected {describe(where.node)}")
    else:
        yield Problem(path, error["msg"])
