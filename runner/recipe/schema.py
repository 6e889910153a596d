"""The recipe JSON Schema: loading, walking to the sub-schema of a key, filling defaults, and
validating with messages in the user's words (typed `type:` items get did-you-mean suggestions)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from runner.recipe.yamlfile import KeyPath
from runner.registry import did_you_mean

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema" / "recipe.schema.json"


@cache
def recipe_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Problem:
    """One mistake in a recipe, located by key path (the loader turns it into file:line)."""

    path: KeyPath
    message: str
    warning: bool = False


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = recipe_schema()["$defs"][name]
    return schema


def typed_variants(schema: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """For a `oneOf` of `type:`-discriminated objects, map each type name to its schema."""
    schema = _deref(schema)
    options = schema.get("oneOf")
    if not options:
        return None
    variants = {}
    for option in options:
        option = _deref(option)
        const = option.get("properties", {}).get("type", {}).get("const")
        if const is None:
            return None
        variants[const] = option
    return variants


def resolve_variant(schema: dict[str, Any], instance: Any) -> dict[str, Any]:
    """The concrete schema for an instance: follows $ref and picks the typed variant."""
    schema = _deref(schema)
    variants = typed_variants(schema)
    if variants is not None and isinstance(instance, dict) and instance.get("type") in variants:
        return variants[instance["type"]]
    return schema


def subschema(path: KeyPath, document: Any) -> dict[str, Any] | None:
    """Schema of the value at ``path`` in ``document`` (None when the path is not in the schema)."""
    schema = resolve_variant(recipe_schema(), document)
    node = document
    for part in path:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            schema = schema.get("items")
            node = node[int(part)] if isinstance(node, list) and int(part) < len(node) else None
        else:
            props = schema.get("properties", {})
            if part in props:
                schema = props[part]
            elif isinstance(schema.get("additionalProperties"), dict):
                schema = schema["additionalProperties"]
            elif schema.get("additionalProperties") is True:
                return {}
            else:
                return None
            node = node.get(part) if isinstance(node, dict) else None
        if schema is None:
            return None
        schema = resolve_variant(schema, node)
    return schema


def fill_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``document`` with every schema default filled in, recursively.

    An absent object section is created when it has no required keys, so `train: {}` and no
    `train:` at all mean the same thing.
    """

    def fill(value: Any, schema: dict[str, Any]) -> Any:
        schema = resolve_variant(schema, value)
        if isinstance(value, dict) and schema.get("type") == "object":
            for key, prop in schema.get("properties", {}).items():
                prop_resolved = _deref(prop)
                if key not in value:
                    if "default" in prop_resolved:
                        value[key] = copy.deepcopy(prop_resolved["default"])
                    elif (
                        prop_resolved.get("type") == "object"
                        and prop_resolved.get("properties")
                        and not prop_resolved.get("required")
                    ):
                        value[key] = {}
                if key in value:
                    value[key] = fill(value[key], prop)
        elif isinstance(value, list) and "items" in schema:
            return [fill(item, schema["items"]) for item in value]
        return value

    return fill(copy.deepcopy(document), recipe_schema())


def _describe_type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type")
    names = {
        "string": "a string",
        "integer": "a whole number",
        "number": "a number",
        "boolean": "true or false",
        "object": "a mapping",
        "array": "a list",
    }
    return names.get(kind, str(kind)) if isinstance(kind, str) else "a valid value"


def validate_document(document: Any) -> list[Problem]:
    """Every schema problem of a merged recipe, in document order, in the user's words."""
    from jsonschema import Draft202012Validator

    root_validator = Draft202012Validator(recipe_schema())
    problems: list[Problem] = []

    def check(instance: Any, schema: dict[str, Any], at: KeyPath) -> None:
        schema = _deref(schema)
        variants = typed_variants(schema)
        if variants is not None:
            check_typed(instance, variants, at)
            return
        # evolve() keeps the root schema as the resolver's base, so `$ref`s inside resolve.
        validator = root_validator.evolve(schema=schema)
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path))):
            problems.extend(explain(error, at))

    def check_typed(instance: Any, variants: dict[str, dict[str, Any]], at: KeyPath) -> None:
        kind = at[-2] if len(at) >= 2 and isinstance(at[-1], int) else "item"
        label = {
            "sources": "source",
            "filters": "filter",
            "export": "export target",
            "checks": "check",
            "extract": "extractor",
        }.get(str(kind), "type")
        if not isinstance(instance, dict):
            problems.append(Problem(at, f"must be a mapping with a `type:` ({label})"))
            return
        if "type" not in instance:
            known = ", ".join(variants)
            problems.append(Problem(at, f"missing `type:`; one of: {known}"))
            return
        name = instance["type"]
        if name not in variants:
            hint = did_you_mean(str(name), list(variants))
            problems.append(
                Problem(
                    (*at, "type"),
                    f"'{name}' is not a known {label}{hint} (known: {', '.join(variants)})",
                )
            )
            return
        check(instance, variants[name], at)

    def explain(error: Any, at: KeyPath) -> Iterator[Problem]:
        where = (*at, *error.absolute_path)
        validator = error.validator
        if validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            extras = set(error.instance) - set(allowed)
            for key in sorted(extras):
                hint = did_you_mean(key, allowed)
                yield Problem((*where, key), f"unknown key '{key}'{hint}")
            return
        if validator == "required":
            yield Problem(where, error.message.replace("is a required property", "is required"))
            return
        if validator in ("oneOf", "anyOf") and error.schema.get("oneOf"):
            # A typed list item inside a plain validator call (e.g. nested extract lists).
            variants = typed_variants(error.schema)
            if variants is not None:
                check_typed(error.instance, variants, where)
                return
        if validator in ("type", "enum", "const"):
            yield Problem(
                where,
                f"{error.instance!r} is not valid here: expected {_describe_type(error.schema)}",
            )
            return
        if validator == "pattern":
            yield Problem(
                where, f"{error.instance!r} does not match the pattern {error.validator_value}"
            )
            return
        yield Problem(where, error.message)

    if not isinstance(document, dict):
        return [
            Problem(
                (), "a recipe must be a YAML mapping of sections (recipe:, name:, sources: ...)"
            )
        ]
    top = recipe_schema()
    # Validate section by section so typed lists are dispatched by `type:` with good messages.
    shallow = {k: v for k, v in top.items() if k != "properties"}
    shallow["properties"] = {k: {} for k in top["properties"]}
    check(document, shallow, ())
    for key, value in document.items():
        prop = top["properties"].get(key)
        if prop is None:
            continue
        if prop.get("type") == "array" and "items" in prop and typed_variants(prop["items"]):
            if not isinstance(value, list):
                problems.append(Problem((key,), f"must be a list (got {type(value).__name__})"))
                continue
            for index, item in enumerate(value):
                check_typed(item, typed_variants(prop["items"]), (key, index))
            if "minItems" in prop and len(value) < prop["minItems"]:
                problems.append(Problem((key,), "needs at least one entry"))
        else:
            check(value, prop, (key,))
    return problems
