"""Fixtures of the data-stage tests: a real tokenizer (built once per session), recipes in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import recipe_of

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"


def tokenizer_json(family: str) -> Path:
    """The ``tokenizer.json`` of a built-in tiny model's real tokenizer (built once, cached)."""
    from runner.models.tiny import tiny_spec, tokenizer_dir

    return tokenizer_dir(tiny_spec(f"tiny:{family}")) / "tokenizer.json"


@pytest.fixture(scope="session")
def tokens():
    """Qwen2's real tokenizer (converted once from llama.cpp's vocab file and cached on disk),
    with its tiktoken twin, as the stage loads it (``TokenCounter.for_base``)."""
    from tokenizers import Tokenizer

    from runner.data.tiktoken_twin import twin_of
    from runner.data.tokenizer import TokenCounter

    path = tokenizer_json("qwen2")
    tokenizer = Tokenizer.from_file(str(path))
    counter = TokenCounter(tokenizer, twin_of(path, tokenizer))
    assert counter.fast is not None
    return counter


@pytest.fixture(scope="session")
def hf_tokens():
    """The same tokenizer without the twin: every count goes through ``tokenizers``."""
    from tokenizers import Tokenizer

    from runner.data.tokenizer import TokenCounter

    return TokenCounter(Tokenizer.from_file(str(tokenizer_json("qwen2"))))


def make_recipe(tmp_path: Path, sources: list[dict[str, Any]], **sections: Any) -> Any:
    """A resolved recipe with just the data sections (what the loader would hand the stage)."""
    config = {
        "sources": sources,
        "filters": sections.pop("filters", []),
        "split": {
            "train": 0.8,
            "val": 0.1,
            "test": 0.1,
            "seed": 42,
            "group_by": "source_file",
            "decontaminate": True,
            "decontaminate_threshold": 0.8,
            **sections.pop("split", {}),
        },
        "prompt": {"template": "chatml", **sections.pop("prompt", {})},
        "model": {"base": "tiny:qwen2"},
        "train": {"seq_len": 512},
        "on_error": sections.pop("on_error", "skip"),
        **sections,
    }
    return recipe_of(config, tmp_path)


@pytest.fixture
def recipe_factory(tmp_path):
    def make(sources, **sections):
        return make_recipe(tmp_path, sources, **sections)

    return make
