"""`recipe doctor`: what this machine can do, what is missing, and how to get it.

Each check answers ok / warn / missing with one line of detail and, when not ok, the fix.
"missing" is for what a recipe cannot run without; "warn" for what limits it (no CUDA means no
QLoRA and slow training, no Ollama binary means the Modelfile is written but not imported).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runner.errors import UserError
from runner.versions import version_of

GIB = 1024**3
# Size of each GGUF relative to the 16-bit model (bits per weight / 16, rounded up a little).
GGUF_SIZE = {
    "f32": 2.0,
    "f16": 1.0,
    "bf16": 1.0,
    "q8_0": 0.55,
    "q6_k": 0.42,
    "q5_k_m": 0.37,
    "q5_k_s": 0.36,
    "q5_0": 0.35,
    "q5_1": 0.38,
    "q4_k_m": 0.31,
    "q4_k_s": 0.29,
    "q4_0": 0.29,
    "q4_1": 0.32,
    "q3_k_l": 0.27,
    "q3_k_m": 0.25,
    "q3_k_s": 0.23,
    "q2_k": 0.2,
}


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn", "missing"
    detail: str
    fix: str = ""


def _venv_bin(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def check_python() -> Check:
    v = sys.version_info
    if (v.major, v.minor) == (3, 11):
        return Check("python", "ok", sys.version.split()[0])
    return Check(
        "python",
        "missing",
        sys.version.split()[0],
        "Axolotl 0.19.0 needs Python 3.11: `make setup PYTHON=python3.11`",
    )


def check_cuda() -> Check:
    from runner.train.hardware import nvidia_driver_present

    if not nvidia_driver_present():
        return Check(
            "cuda",
            "warn",
            "no NVIDIA driver: training runs on CPU (tiny models only; no 4-bit QLoRA)",
            "train on a machine with an NVIDIA GPU, or set model.cpu_fallback: true for 16-bit LoRA on CPU",
        )
    try:
        import torch
    except ImportError:
        return Check("cuda", "missing", "torch is not installed", "run `make setup`")
    if not torch.cuda.is_available():
        return Check(
            "cuda",
            "warn",
            f"NVIDIA driver present but torch {torch.__version__} sees no CUDA device",
            "install a CUDA build of torch 2.13.0 matching the driver (pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128)",
        )
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Check("cuda", "ok", f"{torch.cuda.device_count()} device(s): {names}")


def check_bitsandbytes(cuda: bool) -> Check:
    version = version_of("bitsandbytes")
    if version == "absent":
        return Check(
            "bitsandbytes",
            "warn",
            "not installed: model.quantization 4bit/8bit cannot run",
            "pip install bitsandbytes (needs CUDA for 4-bit training)",
        )
    if not cuda:
        return Check(
            "bitsandbytes",
            "warn",
            f"{version} installed, but 4-bit QLoRA needs CUDA; on CPU the runner refuses it",
            "use a GPU machine, or model.cpu_fallback: true",
        )
    return Check("bitsandbytes", "ok", version)


def check_axolotl() -> Check:
    version = version_of("axolotl")
    if version == "absent":
        return Check(
            "axolotl",
            "missing",
            "not installed",
            "run `make setup` (installs axolotl==0.19.0 with torch 2.13.0)",
        )
    missing = [name for name in ("axolotl", "accelerate") if _venv_bin(name) is None]
    if missing:
        return Check(
            "axolotl",
            "missing",
            f"{version} installed but `{'`, `'.join(missing)}` not found",
            "run from the project's virtual environment (.venv/bin); `axolotl train` execs `accelerate` by name",
        )
    detail = f"{version} (torch {version_of('torch')}, transformers {version_of('transformers')})"
    if version != "0.19.0":
        return Check(
            "axolotl", "warn", detail + "; the runner is tested with 0.19.0", "run `make setup`"
        )
    return Check("axolotl", "ok", detail)


def check_llama_cpp() -> Check:
    try:
        from runner.llamacpp import llama_cpp_dir
    except ImportError as exc:  # the export helpers' module is not in this checkout
        return Check(
            "llama.cpp",
            "missing",
            f"runner.llamacpp cannot be imported ({exc})",
            "update the checkout",
        )
    try:
        tree = llama_cpp_dir()
    except UserError as exc:
        return Check(
            "llama.cpp",
            "missing",
            str(exc),
            "run `make setup` (unpacks the converter from the llama-cpp-python sdist)",
        )
    problems = [
        name
        for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "gguf-py")
        if not (tree / name).exists()
    ]
    if importlib.util.find_spec("llama_cpp") is None:
        problems.append("the llama_cpp module (quantizer and runtime)")
    if problems:
        return Check(
            "llama.cpp", "missing", f"{tree} lacks {', '.join(problems)}", "run `make setup`"
        )
    return Check(
        "llama.cpp",
        "ok",
        f"converter in {tree}; llama-cpp-python {version_of('llama-cpp-python')}",
    )


def check_ollama() -> Check:
    found = shutil.which("ollama")
    if found:
        return Check("ollama", "ok", found)
    return Check(
        "ollama",
        "warn",
        "no `ollama` binary: Modelfiles are written and tested with llama.cpp, not imported",
        "install Ollama (https://ollama.com/download), then `ollama create NAME -f runs/<recipe>/latest/ollama/Modelfile`",
    )


def model_bytes_16bit(folder: Path) -> int:
    """Size of a model's weights at 16 bits, from its weight files and their dtype."""
    import json

    files = list(folder.glob("*.safetensors")) or list(folder.glob("*.bin"))
    size = sum(f.stat().st_size for f in files)
    try:
        dtype = json.loads((folder / "config.json").read_text()).get("torch_dtype") or json.loads(
            (folder / "config.json").read_text()
        ).get("dtype")
    except (OSError, ValueError):
        dtype = None
    return size // 2 if dtype == "float32" else size


def disk_needed(recipe: Any, base_bytes: int) -> int:
    """Bytes the merge and GGUF exports of ``recipe`` will write for a base of this size."""
    need = 0
    if recipe.exports("merge") or recipe.exports("gguf"):
        need += base_bytes
    for target in recipe.exports("gguf"):
        need += base_bytes * GGUF_SIZE.get(target.outtype, 1.0)
        for quant in target.quantize:
            need += base_bytes * GGUF_SIZE.get(quant, 0.6)
    return int(need)


def check_disk(recipe: Any | None, runs: Path) -> Check:
    probe = runs if runs.exists() else runs.parent
    free = shutil.disk_usage(probe).free
    if recipe is None:
        # A 7B model: ~14 GiB merged + ~14 GiB f16 GGUF + ~12 GiB of quantizations.
        status = "ok" if free > 40 * GIB else "warn"
        return Check(
            "disk",
            status,
            f"{free / GIB:.1f} GiB free in {probe} (a 7B model's merge and GGUFs need about 40 GiB)",
            "" if status == "ok" else "free space or set RECIPE_RUNS_DIR to a larger disk",
        )
    from runner.models.resolve import local_folder

    base = recipe.model.base
    folder = None
    try:
        folder = local_folder(base)
        if folder is None and str(base).startswith("tiny:"):
            from runner.models import resolve_base

            folder = resolve_base(base)
    except UserError:
        folder = None
    if folder is None:
        return Check(
            "disk",
            "warn",
            f"{free / GIB:.1f} GiB free; size of {base} unknown until it is in a local folder",
            "download the base model first (`huggingface-cli download ...`) so the need can be computed",
        )
    need = disk_needed(recipe, model_bytes_16bit(folder))
    status = "ok" if free > need * 1.1 else "missing"
    return Check(
        "disk",
        status,
        f"{free / GIB:.1f} GiB free in {probe}; merge + GGUF of {base} need about {need / GIB:.2f} GiB",
        "" if status == "ok" else "free space or set RECIPE_RUNS_DIR to a larger disk",
    )


def check_target(target: Any) -> Check:
    """A compute target answers from here: the Ray Jobs API, sbatch, sky (what was tried)."""
    from runner.compute.dispatch import reach

    answer = reach(target)
    name = f"target {target.name}"
    detail = f"{target.backend} ({target.file}): {answer.detail} [tried {answer.tried}]"
    return Check(name, "ok" if answer.ok else "missing", detail, answer.fix)


def run_checks(
    recipe: Any | None = None, runs: Path | None = None, target: Any | None = None
) -> list[Check]:
    """Every check of this machine; with ``target``, also whether that target answers."""
    from runner.pipeline import runs_root

    cuda = check_cuda()
    checks: list[Callable[[], Check]] = [
        check_python,
        lambda: cuda,
        lambda: check_bitsandbytes(cuda.status == "ok"),
        check_axolotl,
        check_llama_cpp,
        check_ollama,
        lambda: check_disk(recipe, runs or runs_root()),
    ]
    if target is not None:
        checks.append(lambda: check_target(target))
    return [c() for c in checks]


def as_json(checks: list[Check]) -> list[dict[str, str]]:
    return [asdict(c) for c in checks]
