"""llama.cpp's quantizer, run in a child process (``python -m runner.llamacpp quantize``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from runner import proc
from runner.errors import StageError, UserError

# Quantization types the recipe may list -> llama.cpp's ``llama_ftype`` constant names.
QUANT_TYPES: dict[str, str] = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
    "q5_0": "LLAMA_FTYPE_MOSTLY_Q5_0",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "q3_k_s": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q3_k_l": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}


def _default_log(out_path: Path) -> Path:
    return out_path.parent / f"{out_path.name}.log"


def quantize(
    src: Path, dst: Path, qtype: str, *, stage: str = "gguf", log_file: Path | None = None
) -> Path:
    """Quantize ``src`` (an f16/bf16/f32 GGUF) to ``qtype`` with llama.cpp's quantizer.

    Runs in a child process: a crash inside the C library (bad tensor shapes, out of memory)
    then fails this stage with a log instead of killing the runner.
    """
    if qtype not in QUANT_TYPES:
        raise UserError(f"unknown quantization type '{qtype}' (known: {', '.join(QUANT_TYPES)})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    argv = proc.python_argv("-m", "runner.llamacpp", "quantize", str(src), str(dst), qtype)
    proc.run(argv, stage=stage, log_file=log_file or _default_log(dst))
    if not dst.is_file():
        raise StageError(stage, f"the quantizer finished but wrote no {dst}")
    return dst


def _quantize_here(src: str, dst: str, qtype: str) -> int:
    """The child side of :func:`quantize`: one call to ``llama_model_quantize``."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[qtype])
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if status != 0:
        print(f"llama_model_quantize returned {status}", file=sys.stderr)
    return 0 if status == 0 else 1
