"""Extractors: turn raw documents (files, doc sections) into chat examples, no LLM needed.

Importing this package registers every extractor; ``ExtractorList`` is the type of a source's
``extract:`` key, a list discriminated by each entry's ``type:``.
"""

from runner.data.extractors import code, docs_qa  # noqa: F401  (registers the extractors)
from runner.data.registries import EXTRACTORS

ExtractorList = tuple[EXTRACTORS.union(), ...]
