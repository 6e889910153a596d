"""Turn ``model.base`` into a local folder: a built-in tiny model, a local folder, a cached HF id,
or the dequantized copy of a GGUF file or Ollama model.

Nothing is downloaded: a Hugging Face id must already be in the local Hugging Face cache.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from runner.errors import UserError
from runner.models.gguf_base import dequantized, is_gguf_base
from runner.models.tiny import build_tiny, is_tiny
from runner.recipe.fields import ModelRef, Section

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelSection(Section):
    """`model:`: the base model the adapter is trained on."""

    base: ModelRef
    """`tiny:qwen2`, `tiny:llama`, `tiny:deepseek-coder`, a Hugging Face id, a local folder
    (starting with `.`, `/` or `~`, relative to the recipe file), a GGUF file
    (`./models/codellama-7b.Q4_K_M.gguf`) or a model Ollama already pulled
    (`ollama:deepseek-coder:6.7b`): the GGUF is dequantized once to 16-bit weights to train on,
    and the adapter is exported for that GGUF."""
    revision: str | None = None
    """A Hugging Face revision (branch, tag or commit) of the base."""
    quantization: Literal["none", "4bit", "8bit"] = "none"
    """Load the base in 4-bit (QLoRA) or 8-bit; `none` trains a 16-bit LoRA."""
    cpu_fallback: bool = False
    """Without CUDA, train a 16-bit LoRA instead of refusing a 4-bit QLoRA."""
    trust_remote_code: bool = False
    """Let transformers run the model repository's own code (only for bases you trust)."""
    license: str | None = None
    """License of the base model, for the model card."""


def local_folder(base: str | Path) -> Path | None:
    """``base`` as an existing local folder, or None when it names something else."""
    if is_tiny(base):
        return None
    path = Path(base).expanduser()
    if path.is_dir():
        return path.resolve()
    return None


def resolve_base(base: str | Path, revision: str | None = None) -> Path:
    """A local folder holding ``config.json`` and the tokenizer files of ``model.base``."""
    if is_tiny(base):
        return build_tiny(str(base))
    if is_gguf_base(base):
        return dequantized(str(base))
    folder = local_folder(base)
    if folder is None:
        text = str(base)
        if not _HF_ID.match(text):
            raise UserError(
                f"model.base: '{text}' is neither a folder, a Hugging Face id (`org/name`) "
                "nor a built-in tiny model (tiny:qwen2, tiny:llama, tiny:deepseek-coder)"
            )
        folder = _from_hf_cache(text, revision)
    if not (folder / "config.json").is_file():
        raise UserError(
            f"model.base: {folder} has no config.json; is it a Hugging Face model folder?"
        )
    return folder


def _from_hf_cache(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        at = f" at revision {revision}" if revision else ""
        raise UserError(
            f"model.base: '{repo_id}'{at} is not in the local Hugging Face cache and nothing is "
            f"downloaded during a run; fetch it first (`hf download {repo_id}`), "
            "point model.base at a local folder, or use a built-in tiny model such as tiny:qwen2"
        ) from None


def load_tokenizer(base: str | Path, revision: str | None = None) -> Any:
    """The ``transformers`` tokenizer of ``model.base`` (with its chat template, if any)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_base(base, revision)))
