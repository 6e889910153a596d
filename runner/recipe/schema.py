"""The typed recipe: ``Recipe`` assembles the sections and operations declared beside their code.

Where each key is declared (and handled):

- ``sources``: ``runner/data/sources/<type>.py``; their ``extract`` lists: ``runner/data/extractors/``
- ``filters``: ``runner/data/filters/<module>.py`` (registered under their ``type:``)
- ``teacher``: ``runner/data/teacher_endpoint.py`` (its extractor: ``runner/data/extractors/teacher.py``)
- ``split``, ``balance``: ``runner/data/split.py``
- ``prompt``: ``runner/prompt/template.py``
- ``model``: ``runner/models/resolve.py``
- ``lora``, ``train``: ``runner/train/config.py``; ``compute``: ``runner/train/launch.py``
- ``export``: ``runner/export/<stage>.py`` (``merge``, ``gguf``/``lora_gguf``, ``ollama``, ``hub``)
- ``eval``: ``runner/eval/stage.py``; ``eval.checks``: ``runner/eval/checks/``;
  ``eval.gate``: ``runner/eval/gate.py``; ``eval.smoke``: ``runner/export/smoke.py``;
  ``eval.test_set``: ``runner/eval/test_set.py``; ``eval.group_by``: ``runner/eval/groups.py``
- ``continue_from``: ``runner/train/continue_from.py`` (its ``replay``: ``runner/data/sources/replay.py``)
- ``sweep``: ``runner/sweep/section.py`` (run by ``runner/sweep/run.py``)
- ``version``: the run folder's version link and lineage (``runner/run/lineage.py``)

The JSON Schema users give their editor (``recipe schema``) is generated from this model.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from runner.data.registries import FILTERS, SOURCES, load_all
from runner.data.split import BalanceSection, SplitSection
from runner.data.teacher_endpoint import TeacherSection
from runner.eval.stage import EvalSection
from runner.export import ExportList
from runner.hashing import content_hash
from runner.models.resolve import ModelSection
from runner.prompt.template import PromptSection
from runner.recipe.fields import Section
from runner.recipe.problems import Origin
from runner.sweep.section import SweepSection
from runner.train.config import LoraSection, TrainSection
from runner.train.continue_from import ContinueFromSection
from runner.train.launch import ComputeSection

load_all()

SCHEMA_VERSION = 1


class Recipe(Section):
    """A fine-tuning recipe: data, prompt template, base model, training, export, evaluation."""

    recipe: Literal[1]
    """Schema version of this recipe."""
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    """Name of the recipe; runs go to runs/<name>/."""
    description: str | None = None
    version: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Names this run (`v2`, `2025-01`): runs/<name>/<version>/ links to its run folder, and the
    Ollama tag and the Hub card default to `<name>:<version>`."""
    extends: str | tuple[str, ...] | None = None
    """Recipe file(s) this one builds on, relative to this file: mappings merge, lists
    replace."""
    on_error: Literal["skip", "fail"] = "skip"
    """Bad input data: `skip` reports and keeps it in rejected.jsonl; `fail` stops."""
    sources: tuple[SOURCES.union(), ...] = Field(min_length=1)  # type: ignore[valid-type]
    """Where examples come from."""
    filters: tuple[FILTERS.union(), ...] = ()  # type: ignore[valid-type]
    """Applied in order; each drop or alteration is counted and kept with its reason."""
    teacher: TeacherSection | None = None
    """The chat endpoint that answers for `type: teacher` extractors."""
    balance: BalanceSection | None = None
    split: SplitSection = SplitSection()
    prompt: PromptSection = PromptSection()
    model: ModelSection
    lora: LoraSection = LoraSection()
    train: TrainSection = TrainSection()
    compute: ComputeSection = ComputeSection()
    axolotl: dict[str, Any] = {}
    """Raw Axolotl keys, passed through and checked against Axolotl's own config model."""
    continue_from: ContinueFromSection | None = None
    """Train from an earlier run's weights (a new version of a model)."""
    export: ExportList = ()
    eval: EvalSection = EvalSection()
    sweep: SweepSection | None = None
    """Several runs with different values of some keys, ranked by a metric (`recipe sweep`)."""

    _path: Path = PrivateAttr(default=Path("recipe.yaml"))
    _origins: Mapping[str, Origin] = PrivateAttr(default_factory=dict)
    _files: tuple[Path, ...] = PrivateAttr(default=())
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    def attach(
        self,
        path: Path,
        origins: Mapping[str, Origin],
        files: tuple[Path, ...],
        warnings: tuple[str, ...],
    ) -> Recipe:
        """Record where the recipe came from (the loader calls this once)."""
        self._path, self._origins, self._files, self._warnings = path, origins, files, warnings
        return self

    @property
    def path(self) -> Path:
        """The recipe file that was loaded (the last of its ``extends`` chain)."""
        return self._path

    @property
    def origins(self) -> Mapping[str, Origin]:
        """Dotted key path (``train.learning_rate``, ``sources.0.path``) -> where it was set."""
        return self._origins

    @property
    def files(self) -> tuple[Path, ...]:
        return self._files

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain JSON data (keys as users write them)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"extends"})

    def value_at(self, dotted: str) -> Any:
        """The plain data at a dotted key (``model``, ``sources.0.path``); KeyError when the
        recipe has no such key."""
        node: Any = self.to_dict()
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise KeyError(dotted)
        return node

    def section(self, dotted: str) -> Any:
        """``value_at``, or None when the key is not there."""
        try:
            return self.value_at(dotted)
        except KeyError:
            return None

    def hash(self) -> str:
        return content_hash(self.to_dict())

    def exports(self, type_name: str) -> list[Any]:
        """The export targets of one type, in recipe order."""
        return [t for t in self.export if t.type == type_name]


def _models(cls: type = Section) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


def _field_docs(cls: type) -> dict[str, str]:
    """A model's attribute docstrings (the string literal under a field), by field name.

    Read from the source only when the schema is generated: pydantic's own
    ``use_attribute_docstrings`` reads every class's source at import, which cost a third of
    ``recipe validate``'s time.
    """
    try:
        tree = ast.parse(inspect.getsource(sys.modules[cls.__module__]))
    except (OSError, TypeError, KeyError, SyntaxError):
        return {}
    body: list[ast.stmt] = tree.body
    for name in getattr(cls, "source_qualname", cls.__qualname__).split("."):
        node = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == name), None)
        if node is None:
            return {}
        body = node.body
    docs = {}
    for field, doc in zip(body, body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            docs[field.target.id] = " ".join(doc.value.value.split())
    return docs


def _all_field_docs(cls: type) -> dict[str, str]:
    """``_field_docs`` of the class and the models it derives from (its own win)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if isinstance(base, type) and issubclass(base, Section) and base is not Section:
            docs.update(_field_docs(base))
    return docs


def _add_descriptions(schema: dict[str, Any]) -> None:
    by_name = {cls.__name__: cls for cls in _models()}
    by_name[Recipe.__name__] = Recipe
    targets = [(Recipe, schema), *((by_name.get(n), d) for n, d in schema.get("$defs", {}).items())]
    for cls, definition in targets:
        if cls is None:
            continue
        docs = _all_field_docs(cls)
        for name, info in cls.model_fields.items():
            prop = definition.get("properties", {}).get(info.alias or name)
            if prop is not None and name in docs and "description" not in prop:
                prop["description"] = docs[name]


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of recipes, generated from ``Recipe``, with every key's
    description."""
    schema = Recipe.model_json_schema(by_alias=True, mode="validation")
    _add_descriptions(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://recipe-runner.dev/schema/recipe.json",
        "title": "recipe-runner recipe",
        **schema,
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"
