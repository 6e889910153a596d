"""Walk the typed recipe by key path: what a key is (its annotation), with `type:` variants
resolved from the document.

The loader asks this to type a ``--set`` value, to find the values that are paths, to say which
keys a mapping allows (for did-you-mean), and to turn pydantic's error locations, which name the
union member they tried (``sources.0.repo.path``), back into the user's key paths
(``sources[0].path``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runner.recipe.yamlfile import KeyPath

_UNIONS = (Union, types.UnionType)


@dataclass(frozen=True)
class Node:
    """One key's type: the annotation without ``Annotated``, its metadata, and the union
    discriminator when it is a `type:`-tagged union."""

    tp: Any
    metadata: tuple[Any, ...] = ()
    discriminator: str | None = None

    @property
    def origin(self) -> Any:
        return typing.get_origin(self.tp)

    @property
    def is_model(self) -> bool:
        return isinstance(self.tp, type) and issubclass(self.tp, BaseModel)

    @property
    def is_union(self) -> bool:
        return self.origin in _UNIONS

    def members(self) -> list[Node]:
        """The members of a union (``None`` left out)."""
        return [node_of(arg) for arg in typing.get_args(self.tp) if arg is not type(None)]

    @property
    def is_sequence(self) -> bool:
        return self.origin in (tuple, list)


def node_of(annotation: Any, info: FieldInfo | None = None) -> Node:
    """The ``Node`` of an annotation, unwrapping ``Annotated`` and collecting metadata."""
    metadata: list[Any] = list(info.metadata) if info is not None else []
    discriminator = info.discriminator if info is not None else None
    tp = annotation
    while typing.get_origin(tp) is Annotated:
        args = typing.get_args(tp)
        tp = args[0]
        for item in args[1:]:
            if isinstance(item, FieldInfo):
                metadata.extend(item.metadata)
                discriminator = discriminator or item.discriminator
            else:
                metadata.append(item)
    return Node(tp, tuple(metadata), discriminator if isinstance(discriminator, str) else None)


def model_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key users write (an alias such as ``from`` or ``in``)."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def allowed_keys(node: Node | None) -> list[str]:
    if node is None or not node.is_model:
        return []
    return list(model_fields(node.tp))


def variant_for(node: Node, value: Any) -> Node | None:
    """The member of a union that ``value`` is (or is meant to be); None when none fits."""
    members = node.members()
    if node.discriminator is not None:
        tag = value.get(node.discriminator) if isinstance(value, Mapping) else None
        for member in members:
            if member.is_model and _tag_of(member, node.discriminator) == tag:
                return member
        return None
    if len(members) == 1:
        return members[0]
    for member in members:
        if isinstance(value, Mapping) and (member.is_model or member.origin is dict):
            return member
        if isinstance(value, list | tuple) and member.is_sequence:
            return member
    return None


def _tag_of(node: Node, key: str | None = "type") -> Any:
    """The tag a union member answers to: its ``Literal`` under ``key`` (``type:`` in recipes,
    ``backend:`` in compute profiles)."""
    info = node.tp.model_fields.get(key or "type")
    if info is None:
        return None
    args = typing.get_args(info.annotation)
    return args[0] if args else None


def resolve(node: Node, value: Any) -> Node | None:
    """Through unions to the concrete type of ``value``."""
    while node.is_union:
        chosen = variant_for(node, value)
        if chosen is None:
            return node
        node = chosen
    return node


def child(node: Node, part: str | int, value: Any) -> Node | None:
    """The type of ``value[part]`` where ``value`` has type ``node`` (None: not a known key)."""
    resolved = resolve(node, value)
    if resolved is None:
        return None
    if resolved.is_model and isinstance(part, str):
        info = model_fields(resolved.tp).get(part)
        return node_of(info.annotation, info) if info is not None else None
    if resolved.is_sequence and isinstance(part, int):
        args = typing.get_args(resolved.tp)
        return node_of(args[0]) if args else Node(Any)
    if resolved.origin is dict:
        args = typing.get_args(resolved.tp)
        return node_of(args[1]) if len(args) == 2 else Node(Any)
    if resolved.tp is Any or resolved.tp is dict:
        return Node(Any)
    if resolved.is_union and isinstance(part, int):
        for member in resolved.members():
            if member.is_sequence:
                return child(member, part, None)
    return None


def _get(value: Any, part: str | int) -> Any:
    if isinstance(value, Mapping):
        return value.get(part)
    if isinstance(value, list | tuple) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return None


def node_at(root: type[BaseModel], path: KeyPath, document: Any) -> Node | None:
    """The type of the key at ``path`` in ``document`` (None when the path is not a key)."""
    node: Node | None = Node(root)
    value = document
    for part in path:
        if node is None:
            return None
        node = child(node, part, value)
        value = _get(value, part)
    return node


@dataclass
class Location:
    """A pydantic error location in the user's words: the key path, and the type there."""

    path: KeyPath
    node: Node | None
    parent: Node | None = None
    # The error was reported on one member of a plain union (``str | list``): it is the union's.
    in_union: bool = False
    union: Node | None = field(default=None, repr=False)


def locate(root: type[BaseModel], loc: tuple[Any, ...], document: Any) -> Location:
    """Map a pydantic ``loc`` onto the document: drop the union tags it inserts."""
    node: Node | None = Node(root)
    parent: Node | None = None
    value = document
    path: list[str | int] = []
    parts = list(loc)
    while parts:
        if node is not None and node.is_union:
            if node.discriminator is not None:
                tag = parts.pop(0)  # pydantic names the tagged member it validated against
                chosen = next(
                    (
                        m
                        for m in node.members()
                        if m.is_model and _tag_of(m, node.discriminator) == tag
                    ),
                    None,
                )
                node = chosen
                continue
            members = node.members()
            if len(members) > 1:
                # A plain union: pydantic names the member it tried ("str", "list[str]"); the
                # problem is the value's, whichever member it was meant to be.
                return Location(tuple(path), node, parent, in_union=True, union=node)
            node = members[0] if members else None
            continue
        part = parts.pop(0)
        parent = node
        node = child(node, part, value) if node is not None else None
        value = _get(value, part)
        path.append(part)
    if node is not None and node.is_union and len(node.members()) == 1:
        node = node.members()[0]
    return Location(tuple(path), node, parent)


def describe(node: Node | None) -> str:
    """What a value of this type looks like, in words ("a whole number", "one of 'a', 'b'")."""
    if node is None:
        return "a valid value"
    tp = node.tp
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(_literal(v) for v in typing.get_args(tp))
    if node.is_union:
        words = list(dict.fromkeys(describe(m) for m in node.members()))
        if "a number" in words and "a whole number" in words:
            words.remove("a whole number")  # `int | float` keeps whole numbers whole
        return " or ".join(words)
    if node.is_model or node.origin is dict or tp is dict:
        return "a mapping"
    if node.is_sequence:
        return "a list"
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
    return names.get(tp, "a valid value")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def union_kind(node: Node | None) -> str:
    """What the members of a `type:` union are called ("filter", "export target"...)."""
    if node is None:
        return "type"
    for member in node.members():
        kind = getattr(member.tp, "kind", None)
        if isinstance(kind, str):
            return kind
    return "type"


def union_tags(node: Node | None) -> list[str]:
    if node is None:
        return []
    return [str(_tag_of(m, node.discriminator)) for m in node.members() if m.is_model]
