"""Load a recipe: read YAML with marks (bounded), follow `extends:`, apply `--set`, validate into
the typed ``Recipe``, resolve paths, run cross-field rules; return it or every error at once.

Nothing a recipe holds can make this crash or hang: files are read at a bounded cost
(``yamlfile``), every value that reaches the file system is checked first (``fields``), and any
mistake becomes a ``Located`` problem with its file, line and key.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.paths import check_path_text, display_path
from runner.recipe.problems import Located, Origin, Problem, RecipeErrors, translate
from runner.recipe.yamlfile import (
    MAX_BYTES,
    KeyPath,
    Mark,
    YamlProblem,
    dotted,
    load_value,
    parse_yaml,
    read_yaml,
)
from runner.registry import did_you_mean

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

SET_ORIGIN = "--set"
# A chain of shared bases is a few files long; a longer one is almost surely a mistake.
MAX_EXTENDS = 32


# (the path as written, the path it names once resolved) -> why it may not be read, or None
PathCheck = Callable[[str, Path], "str | None"]


@dataclass(frozen=True)
class Limits:
    """What a recipe from someone else may do (the job API), checked while it is loaded so that
    every refusal has its file, line and key like any other mistake.

    ``check_path`` sees every local path the recipe names (the values the typed recipe marks as
    paths, and ``extends:`` files); ``rules`` are extra rules like those of ``rules.py``.
    """

    check_path: PathCheck | None = None
    rules: tuple[Callable[[Recipe], Iterable[Problem]], ...] = ()


@dataclass
class _Layer:
    """One recipe file, or the --set overrides, on its way into the merged document."""

    file: str
    data: dict[str, Any]
    marks: dict[KeyPath, Mark]
    lines: list[str] = field(default_factory=list)


@dataclass
class _Loaded:
    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    problems: list[Located] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)


def _merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, everything else (lists too) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(over)


def _apply_origins(loaded: _Loaded, layer: _Layer) -> None:
    """Record where each key of ``layer`` came from; a replaced list forgets its old items."""

    def walk(value: Any, at: KeyPath) -> None:
        if isinstance(value, list):
            for key in [k for k in loaded.origins if k[: len(at)] == at and len(k) > len(at)]:
                del loaded.origins[key]
        mark = layer.marks.get(at)
        # The root too: a problem with the whole document points at the last file that set it.
        loaded.origins[at] = (
            Origin(layer.file, mark.line, mark.column) if mark else Origin(layer.file)
        )
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, (*at, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, (*at, index))

    walk(layer.data, ())


def _locate(loaded: _Loaded, problem: Problem) -> Located:
    """Find the file and line of the deepest recorded prefix of the problem's key path."""
    path = problem.path
    for cut in range(len(path), -1, -1):
        origin = loaded.origins.get(path[:cut])
        if origin is not None:
            break
    else:
        origin = Origin(str(loaded.files[-1]) if loaded.files else "?", 1, 1)
    source_line = None
    lines = loaded.lines.get(origin.file)
    if lines and 0 < origin.line <= len(lines):
        source_line = lines[origin.line - 1]
    file = origin.file if origin.file == SET_ORIGIN else display_path(origin.file)
    return Located(
        file,
        origin.line,
        origin.column,
        dotted(path),
        problem.message,
        source_line,
        problem.warning,
    )


def _fail(path: Path, message: str, key: str = "(file)", mark: Mark | None = None) -> RecipeErrors:
    line, column = (mark.line, mark.column) if mark else (0, 0)
    return RecipeErrors([Located(display_path(path), line, column, key, message)])


def _read(path: Path, chain: tuple[Path, ...], text: str | None = None) -> Any:
    who = f" (extended by {display_path(chain[-1])})" if chain else ""
    try:
        if text is None:
            return read_yaml(path)
        if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise YamlProblem(path, Mark(1, 1), f"a recipe may be at most {MAX_BYTES:,} bytes")
        return parse_yaml(text, path)
    except YamlProblem as exc:
        raise _fail(exc.path, exc.message, "(yaml)", exc.mark) from None
    except FileNotFoundError:
        raise _fail(path, f"recipe file not found{who}") from None
    except UnicodeDecodeError as exc:
        raise _fail(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise _fail(path, f"cannot read{who}: {exc.strerror or exc}") from None


def _read_chain(
    path: Path, loaded: _Loaded, chain: tuple[Path, ...], text: str | None = None
) -> list[_Layer]:
    """Layers of ``path`` (or of ``text``, read as if it were that file) and everything it
    extends, bases first."""
    path = path.absolute()
    if path in chain:
        cycle = " -> ".join(display_path(p) for p in (*chain, path))
        raise _fail(chain[-1], f"extends cycle: {cycle}", "extends")
    if len(chain) >= MAX_EXTENDS:
        raise _fail(chain[-1], f"extends goes more than {MAX_EXTENDS} files deep", "extends")
    doc = _read(path, chain, text)
    loaded.lines[str(path)] = doc.lines
    if path not in loaded.files:
        loaded.files.append(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise _fail(
            path,
            "a recipe must be a YAML mapping of sections (recipe:, name:, ...)",
            "(top level)",
            Mark(1, 1),
        )
    layers: list[_Layer] = []
    raw = data.get("extends", [])
    parents = [raw] if isinstance(raw, str) else raw
    mark = doc.marks.get(("extends",), Mark(1, 1))
    if not isinstance(parents, list) or not all(isinstance(p, str) and p for p in parents):
        raise RecipeErrors(
            [
                Located(
                    display_path(path),
                    mark.line,
                    mark.column,
                    "extends",
                    "must be a file path or a list of file paths (relative to this recipe)",
                    doc.lines[mark.line - 1] if 0 < mark.line <= len(doc.lines) else None,
                )
            ]
        )
    for index, parent in enumerate(parents):
        key = ("extends",) if isinstance(raw, str) else ("extends", index)
        at = doc.marks.get(key, mark)
        try:
            check_path_text(parent)
        except ValueError as exc:
            raise _fail(path, str(exc), dotted(key), at) from None
        target = path.parent / Path(parent).expanduser()
        refused = loaded.limits.check_path and loaded.limits.check_path(parent, target)
        if refused:
            raise _fail(path, refused, dotted(key), at) from None
        if not target.is_file():
            what = "is a folder, not a recipe file" if target.is_dir() else "not found"
            raise RecipeErrors(
                [
                    Located(
                        display_path(path),
                        at.line,
                        at.column,
                        dotted(key),
                        f"extended recipe {what}: {parent} (looked for {display_path(target)})",
                        doc.lines[at.line - 1] if 0 < at.line <= len(doc.lines) else None,
                    )
                ]
            )
        layers.extend(_read_chain(target, loaded, (*chain, path)))
    own = {k: v for k, v in data.items() if k != "extends"}
    layers.append(_Layer(str(path), own, doc.marks, doc.lines))
    return layers


def _parse_override(text: str) -> tuple[KeyPath, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeErrors([Located(SET_ORIGIN, 0, 0, text, "expected --set key.path=value")])
    parts: list[str | int] = []
    for piece in key.strip().replace("[", ".").replace("]", "").split("."):
        if piece:
            parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts), value


def _typed_value(raw: str, node: Any) -> Any:
    """Type a --set value by the key's type: strings stay strings; others parse as YAML."""
    from runner.recipe.walk import resolve

    resolved = resolve(node, raw) if node is not None else None
    if resolved is not None and resolved.tp is str:
        return raw
    if not raw.strip():
        return ""
    try:
        return load_value(raw)
    except YamlProblem:
        return raw


def _set_at(document: dict[str, Any], path: KeyPath, value: Any) -> None:
    node: Any = document
    for index, part in enumerate(path[:-1]):
        nxt = path[index + 1]
        if isinstance(node, dict):
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            raise KeyError(dotted(path[: index + 1]))
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int):
        if last < len(node):
            node[last] = value
        elif last == len(node):
            node.append(value)
        else:
            raise KeyError(dotted(path))
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise KeyError(dotted(path))


def _model() -> type[Recipe]:
    """The typed recipe, imported when a document is read: it imports every operation's options,
    which a file refused for its size or its YAML never needs."""
    from runner.recipe.schema import Recipe

    return Recipe


def _apply_overrides(document: dict[str, Any], overrides: Any, loaded: _Loaded) -> None:
    from runner.recipe.walk import allowed_keys, node_at, resolve

    Recipe = _model()
    for text in overrides:
        key, raw = _parse_override(text)
        node = node_at(Recipe, key, document)
        if node is None:
            parent = node_at(Recipe, key[:-1], document)
            resolved = resolve(parent, None) if parent is not None else None
            hint = did_you_mean(str(key[-1]), allowed_keys(resolved))
            loaded.problems.append(Located(SET_ORIGIN, 0, 0, dotted(key), f"unknown key{hint}"))
            continue
        try:
            _set_at(document, key, _typed_value(raw, node))
        except KeyError as exc:
            loaded.problems.append(
                Located(SET_ORIGIN, 0, 0, dotted(key), f"no such entry: {exc.args[0]}")
            )
            continue
        for k in [k for k in loaded.origins if k[: len(key)] == key]:
            del loaded.origins[k]
        loaded.origins[key] = Origin(SET_ORIGIN)


def _validate(document: dict[str, Any]) -> tuple[Recipe | None, list[Problem]]:
    from pydantic import ValidationError

    Recipe = _model()
    try:
        return Recipe.model_validate(document), []
    except ValidationError as exc:
        return None, translate(Recipe, exc.errors(include_url=False), document)


def _resolve_paths(document: dict[str, Any], loaded: _Loaded) -> list[Problem]:
    """Make every local path absolute against the folder of the file that set it."""
    from runner.recipe.fields import local_path_mark
    from runner.recipe.walk import node_at, resolve

    warnings: list[Problem] = []
    Recipe = _model()

    def walk(value: Any, at: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*at, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*at, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or at[:1] == ("extends",):
            return value
        node = node_at(Recipe, at, document)
        node = resolve(node, value) if node is not None else None
        mark = local_path_mark(list(node.metadata)) if node is not None else None
        if mark is None or not mark.is_local(value):
            return value
        origin = loaded.origins.get(at)
        base = (
            Path.cwd() if origin is None or origin.file == SET_ORIGIN else Path(origin.file).parent
        )
        expanded = Path(value).expanduser()
        resolved = (base / expanded).resolve()
        refused = loaded.limits.check_path and loaded.limits.check_path(value, resolved)
        if refused:
            warnings.append(Problem(at, refused))
            return value
        if expanded.is_absolute():
            warnings.append(
                Problem(
                    at,
                    f"absolute path {value!r} will not work on other machines; "
                    "prefer a path relative to the recipe",
                    warning=True,
                )
            )
        return str(resolved)

    resolved = walk(document, ())
    document.clear()
    document.update(resolved)
    return warnings


def _apply_laptop(document: dict[str, Any], loaded: _Loaded) -> None:
    """The `--laptop` overrides (runner/recipe/laptop.py), each listed as a warning."""
    import json

    from runner.recipe.laptop import LAPTOP_ORIGIN, describe_change, laptop_overrides

    changes = []
    for dotted_key, value in laptop_overrides(document).items():
        key = tuple(int(p) if p.isdigit() else p for p in dotted_key.split("."))
        before = document
        for part in key:
            before = before.get(part) if isinstance(before, dict) else None
        if before == value:
            continue
        _set_at(document, key, value)
        for k in [k for k in loaded.origins if k[: len(key)] == key]:
            del loaded.origins[k]
        loaded.origins[key] = Origin(LAPTOP_ORIGIN)
        changes.append(describe_change(dotted_key, before, value, json.dumps))
    if changes:
        message = "trying the recipe on this CPU with " + "; ".join(changes)
        loaded.problems.append(Located(LAPTOP_ORIGIN, 0, 0, "(recipe)", message, warning=True))


def _document(
    path: Path, overrides: Any, loaded: _Loaded, text: str | None = None, laptop: bool = False
) -> dict[str, Any]:
    layers = _read_chain(path, loaded, (), text)
    document: dict[str, Any] = {}
    for layer in layers:
        document = _merge(document, layer.data)
        _apply_origins(loaded, layer)
    if laptop:
        _apply_laptop(document, loaded)
    _apply_overrides(document, overrides, loaded)
    return document


def _build(document: dict[str, Any], loaded: _Loaded, path: Path) -> Recipe:
    """Validate, resolve paths, validate again, check the cross-field rules; raise every error."""
    recipe, problems = _validate(document)
    if recipe is not None:
        problems = _resolve_paths(document, loaded)
        recipe, more = _validate(document)
        problems.extend(more)
        if recipe is not None and not any(not p.warning for p in loaded.problems):
            from runner.recipe.rules import check_rules

            problems.extend(check_rules(recipe))
            for rule in loaded.limits.rules:
                problems.extend(rule(recipe))
    located = loaded.problems + [_locate(loaded, p) for p in problems]
    errors = [p for p in located if not p.warning]
    if errors:
        raise RecipeErrors(errors)
    assert recipe is not None
    origins = {".".join(str(p) for p in key): origin for key, origin in loaded.origins.items()}
    warnings = tuple(p.render() for p in located if p.warning)
    return recipe.attach(path.absolute(), origins, tuple(loaded.files), warnings)


def load_recipe(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    limits: Limits | None = None,
    laptop: bool = False,
) -> Recipe:
    """Load and validate a recipe; raise `RecipeErrors` listing every problem at once.

    ``laptop`` applies the `--laptop` overrides (runner/recipe/laptop.py) before ``overrides``.
    """
    try:
        check_path_text(str(path))
    except ValueError as exc:
        raise _fail(Path(str(path).replace("\x00", "\\0")), str(exc)) from None
    loaded = _Loaded(limits=limits or Limits())
    document = _document(Path(path), overrides, loaded, laptop=laptop)
    return _build(document, loaded, Path(path))


def load_recipe_text(
    text: str,
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    shown_as: str = "recipe",
    limits: Limits | None = None,
) -> Recipe:
    """``load_recipe`` of YAML text (the job API), read as if it were the file ``path``:
    relative paths and ``extends:`` resolve against its folder. Problems in the text name it
    ``shown_as`` instead of the file, with their line and column in the text."""
    path = Path(path).absolute()
    loaded = _Loaded(limits=limits or Limits())
    try:
        document = _document(path, overrides, loaded, text)
        return _build(document, loaded, path)
    except RecipeErrors as exc:
        shown = display_path(path)
        raise RecipeErrors(
            [replace(p, file=shown_as) if p.file == shown else p for p in exc.problems]
        ) from None


def recipe_from_dict(data: dict[str, Any], path: str | Path = "recipe.yaml") -> Recipe:
    """Validate a recipe given as data (tests, the job API), as if it were read from ``path``:
    relative paths resolve against that file's folder."""
    path = Path(path).absolute()
    loaded = _Loaded(files=[path])
    document = copy.deepcopy(data)
    _apply_origins(loaded, _Layer(str(path), document, {}))
    return _build(document, loaded, path)
