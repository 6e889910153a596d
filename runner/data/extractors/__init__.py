"""Extractors: turn raw documents (files, doc sections) into chat examples: cut from the code
and docs themselves, broken and repaired (``repair_code``), as infill (``fill_in_middle``), or
answered by a teacher model (``teacher``).

Importing this package registers every extractor; ``ExtractorList`` is the type of a source's
``extract:`` key, a list discriminated by each entry's ``type:``.
"""

from runner.data.extractors import (  # noqa: F401  (registers the extractors)
    code,
    docs_qa,
    fim,
    repair,
    teacher,
)
from runner.data.registries import EXTRACTORS

ExtractorList = tuple[EXTRACTORS.union(), ...]
