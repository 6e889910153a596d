"""The registries of data operations, keyed by the `type:` users write in a recipe.

Importing this module is cheap. ``load_all()`` imports the modules that register the operations
(sources, extractors, filters); it is called by the data stage and by anything listing names.
"""

from __future__ import annotations

import importlib

from runner.registry import Registry

SOURCES = Registry("source")
EXTRACTORS = Registry("extractor")
FILTERS = Registry("filter")

_MODULES = (
    "runner.data.sources.repo",
    "runner.data.sources.docs",
    "runner.data.sources.conversations",
    "runner.data.sources.instructions",
    "runner.data.sources.agent_logs",
    "runner.data.sources.hf_dataset",
    "runner.data.sources.git_history",
    "runner.data.extractors.code",
    "runner.data.extractors.docs_qa",
    "runner.data.filters.dedupe",
    "runner.data.filters.length",
    "runner.data.filters.text",
    "runner.data.filters.syntax",
    "runner.data.filters.secrets",
)


def load_all() -> None:
    """Import every module that registers a source, extractor or filter."""
    for name in _MODULES:
        importlib.import_module(name)
