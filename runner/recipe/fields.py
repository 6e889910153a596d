"""The building blocks of the typed recipe: the strict base every section and operation derives
from, and the value types that reach the file system or a regular-expression engine.

This module sits at the bottom of the recipe layer: sections (``runner/train/config.py``'s
``Train``...) and registered operations (``runner/data/filters/text.py``'s ``RegexFilter.Options``)
declare their options with these, and ``runner/recipe/schema.py`` assembles them into ``Recipe``.
Only pydantic is imported here, so declaring options costs nothing at import time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from runner.paths import check_path_text, looks_local, names_template_file


class Section(BaseModel):
    """A recipe section or an operation's options: unknown keys are errors, values are read-only.

    Axolotl silently drops keys it does not know; a recipe must not: `extra="forbid"` turns a
    typo into an error with a did-you-mean (``runner/recipe/errors.py``).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        validate_default=False,
        defer_build=True,
    )


class Operation(Section):
    """Options of an operation a recipe names by ``type:`` (a source, filter, check, export...).

    Subclasses declare ``type: Literal["name"]``; the registry reads the name from there, so the
    YAML name and the class that handles it are one text search apart.
    """

    kind: ClassVar[str] = "operation"

    @classmethod
    def type_name(cls) -> str:
        field = cls.model_fields["type"]
        (name,) = field.annotation.__args__  # type: ignore[union-attr]
        return str(name)


class LocalPath:
    """Field metadata: the value names a file or folder (when ``is_local`` says so), which the
    loader resolves against the folder of the recipe file that set it."""

    def __init__(self, name: str, is_local: Callable[[str], bool]):
        self.name = name
        self.is_local = is_local

    def __repr__(self) -> str:
        return f"<{self.name}>"


PATH_MARK = LocalPath("path", lambda _: True)
MODEL_REF_MARK = LocalPath("model-ref", looks_local)
TEMPLATE_REF_MARK = LocalPath("template-ref", names_template_file)


def check_pattern(value: str) -> str:
    """A regular expression that compiles (checked once, when the recipe is loaded)."""
    try:
        re.compile(value, re.MULTILINE)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


# A file or folder the recipe reads; relative to the recipe file that set it.
RecipePath = Annotated[
    str,
    AfterValidator(check_path_text),
    PATH_MARK,
    WithJsonSchema({"type": "string", "format": "path"}),
]
# `model.base`: a built-in tiny model, a Hugging Face id, or (starting with `.`, `/` or `~`) a
# local folder relative to the recipe file.
ModelRef = Annotated[
    str,
    AfterValidator(check_path_text),
    MODEL_REF_MARK,
    WithJsonSchema({"type": "string", "format": "model-ref"}),
]
# `prompt.template`: a template name, `tokenizer`, or a `.jinja` file relative to the recipe.
TemplateRef = Annotated[
    str,
    AfterValidator(check_path_text),
    TEMPLATE_REF_MARK,
    WithJsonSchema({"type": "string", "format": "template-ref"}),
]
Pattern = Annotated[str, AfterValidator(check_pattern)]
# A random seed: numpy and torch take at most 32 bits.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


def local_path_mark(metadata: list[Any]) -> LocalPath | None:
    """The ``LocalPath`` marker among a field's metadata, if any."""
    return next((item for item in metadata if isinstance(item, LocalPath)), None)
