"""Base models: built-in tiny models, local folders, cached Hugging Face ids; convertibility checks."""

from runner.models.convertible import check_convertible
from runner.models.resolve import load_tokenizer, resolve_base
from runner.models.tiny import TINY_MODELS, is_tiny

__all__ = ["TINY_MODELS", "check_convertible", "is_tiny", "load_tokenizer", "resolve_base"]
