"""Load a recipe: read YAML with marks, follow `extends:`, apply `--set`, fill defaults, validate,
resolve paths, run cross-field rules, and return one immutable `Recipe` (or every error at once)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.recipe.model import Origin, Recipe, freeze
from runner.recipe.problems import Located, RecipeErrors, display_path
from runner.recipe.rules import check_rules
from runner.recipe.schema import Problem, fill_defaults, subschema, validate_document
from runner.recipe.yamlfile import KeyPath, Mark, YamlProblem, dotted, read_yaml

SET_ORIGIN = "--set"


@dataclass
class _Layer:
    """One recipe file, or the --set overrides, on its way into the merged document."""

    file: str
    data: dict[str, Any]
    marks: dict[KeyPath, Mark]
    lines: list[str] = field(default_factory=list)


@dataclass
class _Loaded:
    document: dict[str, Any] = field(default_factory=dict)
    origins: dict[KeyPath, Origin] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    problems: list[Located] = field(default_factory=list)


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


def _read_chain(path: Path, loaded: _Loaded, chain: tuple[Path, ...]) -> list[_Layer]:
    """Layers of ``path`` and everything it extends, bases first."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(display_path(p) for p in (*chain, path))
        raise RecipeErrors(
            [Located(display_path(chain[-1]), 0, 0, "extends", f"extends cycle: {cycle}")]
        )
    try:
        doc = read_yaml(path)
    except YamlProblem as exc:
        raise RecipeErrors(
            [Located(display_path(exc.path), exc.mark.line, exc.mark.column, "(yaml)", exc.message)]
        ) from None
    except FileNotFoundError:
        who = f" (extended by {display_path(chain[-1])})" if chain else ""
        raise RecipeErrors(
            [Located(display_path(path), 0, 0, "(file)", f"recipe file not found{who}")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeErrors(
            [Located(display_path(path), 0, 0, "(file)", f"cannot read: {exc}")]
        ) from None
    loaded.lines[str(path)] = doc.lines
    if path not in loaded.files:
        loaded.files.append(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise RecipeErrors(
            [
                Located(
                    display_path(path),
                    1,
                    1,
                    "(top level)",
                    "a recipe must be a YAML mapping of sections (recipe:, name:, ...)",
                )
            ]
        )
    layers: list[_Layer] = []
    parents = data.get("extends", [])
    parents = [parents] if isinstance(parents, str) else parents
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        mark = doc.marks.get(("extends",), Mark(1, 1))
        raise RecipeErrors(
            [
                Located(
                    display_path(path),
                    mark.line,
                    mark.column,
                    "extends",
                    "must be a file path or a list of file paths",
                )
            ]
        )
    for index, parent in enumerate(parents):
        target = (path.parent / Path(parent).expanduser()).resolve()
        if not target.exists():
            key = ("extends",) if isinstance(data.get("extends"), str) else ("extends", index)
            mark = doc.marks.get(key, Mark(1, 1))
            raise RecipeErrors(
                [
                    Located(
                        display_path(path),
                        mark.line,
                        mark.column,
                        dotted(key),
                        f"extended recipe not found: {parent} (looked for {display_path(target)})",
                        doc.lines[mark.line - 1] if doc.lines else None,
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


def _typed_value(raw: str, schema: dict[str, Any] | None) -> Any:
    """Type a --set value by the schema: strings stay strings; others parse as YAML."""
    kinds = {schema.get("type")} if schema and isinstance(schema.get("type"), str) else set()
    if schema and "oneOf" in schema:
        kinds |= {opt.get("type") for opt in schema["oneOf"] if isinstance(opt, dict)}
    if kinds == {"string"} or (schema and schema.get("format") in ("path", "model-ref")):
        return raw
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
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


def _resolve_paths(document: dict[str, Any], loaded: _Loaded, problems: list[Problem]) -> None:
    """Make every `format: path` value absolute against the folder of the file that set it."""

    def walk(value: Any, at: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*at, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*at, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or at[:1] == ("extends",):
            return value
        schema = subschema(at, document) or {}
        fmt = schema.get("format")
        if fmt == "model-ref" and not value.startswith((".", "/", "~")):
            return value
        if fmt not in ("path", "model-ref"):
            return value
        origin = loaded.origins.get(at)
        base = (
            Path.cwd() if origin is None or origin.file == SET_ORIGIN else Path(origin.file).parent
        )
        expanded = Path(value).expanduser()
        if expanded.is_absolute():
            problems.append(
                Problem(
                    at,
                    f"absolute path {value!r} will not work on other machines; "
                    "prefer a path relative to the recipe",
                    warning=True,
                )
            )
        return str((base / expanded).resolve())

    resolved = walk(document, ())
    document.clear()
    document.update(resolved)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe; raise `RecipeErrors` listing every problem at once."""
    loaded = _Loaded()
    layers = _read_chain(Path(path), loaded, ())
    document: dict[str, Any] = {}
    for layer in layers:
        document = _merge(document, layer.data)
        _apply_origins(loaded, layer)

    problems: list[Problem] = []
    for text in overrides:
        key, raw = _parse_override(text)
        schema = subschema(key, document)
        if schema is None:
            parent = subschema(key[:-1], document) or {}
            hint = ""
            if isinstance(parent.get("properties"), dict):
                from runner.registry import did_you_mean

                hint = did_you_mean(str(key[-1]), list(parent["properties"]))
            loaded.problems.append(Located(SET_ORIGIN, 0, 0, dotted(key), f"unknown key{hint}"))
            continue
        try:
            _set_at(document, key, _typed_value(raw, schema))
        except KeyError as exc:
            loaded.problems.append(
                Located(SET_ORIGIN, 0, 0, dotted(key), f"no such entry: {exc.args[0]}")
            )
            continue
        for k in [k for k in loaded.origins if k[: len(key)] == key]:
            del loaded.origins[k]
        loaded.origins[key] = Origin(SET_ORIGIN)

    problems.extend(validate_document(document))
    errors = [p for p in problems if not p.warning]
    if not errors and not loaded.problems:
        document = fill_defaults(document)
        _resolve_paths(document, loaded, problems)
        problems.extend(check_rules(document))

    located = loaded.problems + [_locate(loaded, p) for p in problems]
    errors = [p for p in located if not p.warning]
    if errors:
        raise RecipeErrors(errors)
    warnings = tuple(p.render() for p in located if p.warning)
    origins = {".".join(str(p) for p in key): origin for key, origin in loaded.origins.items()}
    return Recipe(
        name=document["name"],
        path=Path(path).resolve(),
        config=freeze(document),
        origins=origins,
        files=tuple(loaded.files),
        warnings=warnings,
    )
