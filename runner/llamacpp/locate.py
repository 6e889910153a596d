"""Where llama.cpp is: its source tree (converter scripts, gguf-py, vocab files, templates) and
the versions that decide what conversion and inference produce.

The converter scripts (``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py``), their ``gguf-py``
and the vocab-only tokenizer files ship only in the llama-cpp-python sdist; ``make setup`` unpacks
that tree into ``.venv/llama.cpp``. The quantizer and the runtime are the compiled library of the
same pinned llama-cpp-python, so conversion, quantization and inference agree on one version.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from runner.errors import UserError
from runner.versions import version_of


def llama_cpp_dir() -> Path:
    """The llama.cpp source tree: ``$RECIPE_LLAMA_CPP_DIR``, else ``.venv/llama.cpp``."""
    candidates = []
    if os.environ.get("RECIPE_LLAMA_CPP_DIR"):
        candidates.append(Path(os.environ["RECIPE_LLAMA_CPP_DIR"]).expanduser())
    else:
        candidates.append(Path(sys.prefix) / "llama.cpp")
        candidates.append(Path(__file__).resolve().parents[2] / ".venv" / "llama.cpp")
    for path in candidates:
        if (path / "convert_hf_to_gguf.py").is_file():
            return path
    raise UserError(
        "llama.cpp's converter was not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); run `make setup`, or set RECIPE_LLAMA_CPP_DIR to a llama.cpp source tree"
    )


def versions() -> dict[str, str]:
    """Versions that decide what conversion and inference produce (for cache keys and locks)."""
    result = {"llama-cpp-python": version_of("llama-cpp-python")}
    try:
        pyproject = (llama_cpp_dir() / "gguf-py" / "pyproject.toml").read_text()
        line = next(x for x in pyproject.splitlines() if x.startswith("version"))
        result["gguf-py"] = line.split("=", 1)[1].strip().strip('"')
    except (UserError, StopIteration, OSError):
        result["gguf-py"] = "absent"
    return result


def vocab_gguf(family: str) -> Path:
    """A vocab-only GGUF shipped with llama.cpp, e.g. ``qwen2`` -> ``models/ggml-vocab-qwen2.gguf``."""
    path = llama_cpp_dir() / "models" / f"ggml-vocab-{family}.gguf"
    if not path.is_file():
        raise UserError(f"llama.cpp ships no vocab file {path.name} (in {path.parent})")
    return path


def template_file(name: str) -> Path:
    """A real chat template shipped with llama.cpp under ``models/templates/``."""
    path = llama_cpp_dir() / "models" / "templates" / name
    if not path.is_file():
        raise UserError(f"llama.cpp ships no chat template {name} (in {path.parent})")
    return path
