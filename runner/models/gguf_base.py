"""`model.base` as a GGUF: a file (`./models/codellama-7b.Q4_K_M.gguf`) or an Ollama model
(`ollama:deepseek-coder:6.7b`): fine-tune the model you already run.

Axolotl trains Hugging Face weights, so the GGUF is dequantized once with transformers' GGUF
loader (gguf-py's dequantizers) into a 16-bit Hugging Face folder with its tokenizer and chat
template, cached under the user cache by the GGUF's sha256 (an Ollama blob's name is its
digest). The adapter trained on it is exported as a LoRA GGUF applied to the original file, so
what is tested and served is "the model I have + my adapter". An architecture or tensor type the
loader cannot dequantize is refused at validate time, from the file's header alone.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from runner.errors import UserError
from runner.models.ollama_store import OllamaModel, find_model, is_ollama

# Full-precision tensor types the loader copies as they are.
_FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


def is_gguf_base(base: str | Path) -> bool:
    """``model.base`` names a GGUF file or an Ollama model rather than Hugging Face weights."""
    return is_ollama(base) or str(base).lower().endswith(".gguf")


@dataclass(frozen=True)
class GgufBase:
    """Where a GGUF base is: the file, and the Ollama model it belongs to, if any."""

    path: Path
    ollama: OllamaModel | None = None

    @property
    def from_ref(self) -> str:
        """What a Modelfile's ``FROM`` names: the Ollama model, else the file."""
        return self.ollama.name.written if self.ollama else str(self.path)

    def digest(self) -> str:
        """sha256 of the GGUF: the Ollama blob's name, else hashed (once per size and mtime)."""
        return self.ollama.digest if self.ollama else file_digest(self.path)


def locate(base: str) -> GgufBase:
    """The GGUF file of ``model.base``; a missing file or Ollama model raises a ``UserError``."""
    if is_ollama(base):
        model = find_model(base)
        return GgufBase(model.gguf, model)
    path = Path(base).expanduser()
    if not path.is_file():
        raise UserError(f"model.base: the GGUF file {path} does not exist")
    return GgufBase(path.resolve())


@cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    stat = path.stat()
    return _file_digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1)
def loader_architectures() -> frozenset[str]:
    """GGUF ``general.architecture`` values transformers' GGUF loader maps to a model config."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    return frozenset(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}


def _dequantizable(type_name: str) -> bool:
    """Whether gguf-py (which transformers' loader calls) dequantizes this tensor type: one
    block of zeros is dequantized for real."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    if type_name in _FLOAT_TYPES:
        return True
    qtype = GGMLQuantizationType[type_name]
    _, type_size = GGML_QUANT_SIZES[qtype]
    try:
        dequantize(np.zeros((1, type_size), dtype=np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


def _header(path: Path) -> dict[str, Any]:
    """Architecture, adapter type and tensor types, read by gguf-py: the reader transformers
    dequantizes the file with, and one that fails with a Python exception on a file that is
    not GGUF (a user's file; the files this tool writes are read by ggml's own reader)."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def value(key: str) -> Any:
        found = reader.fields.get(key)
        return None if found is None else found.contents()

    return {
        "architecture": value("general.architecture"),
        "adapter_type": value("adapter.type"),
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
    }


def unsupported_reason(path: Path, shown: str) -> str | None:
    """Why transformers cannot turn this GGUF into trainable weights, or None; read from the
    header, so that ``recipe validate`` refuses it before anything runs."""
    try:
        meta = _header(path)
    except Exception as exc:  # gguf-py raises ValueError, struct errors, IndexError...
        return f"{shown} is not a readable GGUF file ({type(exc).__name__}: {exc})"
    if meta["adapter_type"]:
        return f"{shown} is a {meta['adapter_type']} adapter GGUF, not a model"
    architecture = meta["architecture"]
    known = loader_architectures()
    if architecture not in known:
        return (
            f"{shown} is a '{architecture}' model, an architecture transformers' GGUF loader "
            f"cannot dequantize (it reads {', '.join(sorted(known))}); start from the model's "
            "Hugging Face weights instead"
        )
    bad = [t for t in meta["tensor_types"] if not _dequantizable(t)]
    if bad:
        return (
            f"{shown} has tensors of type {', '.join(bad)}, which gguf-py (transformers' GGUF "
            "loader) cannot dequantize; use a Q8_0, K-quant or 16-bit GGUF of the model"
        )
    return None


def dequantized(base: str) -> Path:
    """The 16-bit Hugging Face folder of a GGUF base, built once per GGUF digest."""
    from runner.models.cache import build_once

    located = locate(base)
    shown = located.from_ref
    reason = unsupported_reason(located.path, shown)
    if reason:
        raise UserError(f"model.base: {reason}")
    digest = located.digest()

    def build(tmp: Path) -> None:
        print(
            f"model.base: dequantizing {shown} to a 16-bit Hugging Face model "
            "(once; cached by its sha256)",
            file=sys.stderr,
            flush=True,
        )
        _dequantize(located.path, tmp)
        source = {"gguf": str(located.path), "from": shown, "sha256": digest}
        (tmp / "gguf_source.json").write_text(json.dumps(source, indent=2) + "\n")

    # Named by the digest alone: the same bytes as a file and as an Ollama blob are one model,
    # dequantized once.
    return build_once("gguf-base", "gguf", digest, build)


def _dequantize(gguf_file: Path, out: Path) -> None:
    """transformers' GGUF loader: weights to float16, the tokenizer with its chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # An Ollama blob has no .gguf suffix; the loader opens ``folder / gguf_file`` as given.
    folder, name = str(gguf_file.parent), gguf_file.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float16)
    model.save_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(str(out))
