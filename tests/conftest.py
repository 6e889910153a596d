"""Fixtures shared across test folders: tokenizers for checking chat-template rendering against
transformers' own ``apply_chat_template``."""

from __future__ import annotations

import pytest

from runner.logs import quiet_libraries

# As `recipe` does at start: no telemetry, no network, no progress bars from the libraries
# the tests import (Axolotl's config loader sends an event when it reads a config).
quiet_libraries()

# Special tokens of the model families the runner's tiny models use (Qwen2's has no BOS).
FAMILY_TOKENS = {
    "qwen2": {"bos_token": None, "eos_token": "<|endoftext|>"},
    "llama": {"bos_token": "<s>", "eos_token": "</s>"},
    "deepseek-coder": {
        "bos_token": "<｜begin▁of▁sentence｜>",
        "eos_token": "<｜end▁of▁sentence｜>",
    },
}


@pytest.fixture(scope="session")
def make_tokenizer():
    """A real transformers tokenizer with the given special tokens and chat template.

    Rendering a chat template reads only the template and the special tokens, so a one-word
    vocabulary keeps this fast while ``apply_chat_template`` runs its real code path.
    """
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    def make(chat_template: str, bos_token: str | None, eos_token: str | None):
        tokens = {k: v for k, v in {"bos_token": bos_token, "eos_token": eos_token}.items() if v}
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
            **tokens,
        )
        tokenizer.chat_template = chat_template
        return tokenizer

    return make
