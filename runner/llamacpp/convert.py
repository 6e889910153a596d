"""llama.cpp's own converters: a Hugging Face model folder, or a PEFT LoRA adapter, to GGUF."""

from __future__ import annotations

import os
from pathlib import Path

from runner import proc
from runner.errors import StageError, UserError
from runner.llamacpp.locate import llama_cpp_dir

CONVERTER_OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def converter_env() -> dict[str, str]:
    """Run the converter against its own ``gguf-py``, not whatever ``gguf`` is installed."""
    gguf_py = str(llama_cpp_dir() / "gguf-py")
    existing = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": gguf_py + (os.pathsep + existing if existing else "")}


def converter_argv(
    model_dir: Path, out_path: Path, outtype: str = "f16", metadata: Path | None = None
) -> list[str]:
    """argv of ``convert_hf_to_gguf.py`` for a Hugging Face model folder; ``metadata`` is a
    JSON file of ``general.*`` keys that override what the converter guesses (its
    ``--metadata``, gguf-py ``Metadata.load``)."""
    if outtype not in CONVERTER_OUTTYPES:
        raise UserError(f"the converter writes {', '.join(CONVERTER_OUTTYPES)}, not '{outtype}'")
    script = llama_cpp_dir() / "convert_hf_to_gguf.py"
    extra = ["--metadata", str(metadata)] if metadata is not None else []
    return proc.python_argv(
        str(script), str(model_dir), "--outfile", str(out_path), "--outtype", outtype, *extra
    )


def lora_converter_argv(
    adapter_dir: Path, base_dir: Path, out_path: Path, outtype: str = "f16"
) -> list[str]:
    """argv of ``convert_lora_to_gguf.py``; ``base_dir`` gives the base config (no weights needed)."""
    script = llama_cpp_dir() / "convert_lora_to_gguf.py"
    return proc.python_argv(
        str(script),
        "--base",
        str(base_dir),
        "--outfile",
        str(out_path),
        "--outtype",
        outtype,
        str(adapter_dir),
    )


def _default_log(out_path: Path) -> Path:
    return out_path.parent / f"{out_path.name}.log"


def _run_converter(
    argv: list[str], out_path: Path, what: str, stage: str, log_file: Path | None
) -> Path:
    """Run one of llama.cpp's converter scripts and check that it wrote its output."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    proc.run(argv, stage=stage, log_file=log_file or _default_log(out_path), env=converter_env())
    if not out_path.is_file():
        raise StageError(stage, f"the {what} finished but wrote no {out_path}")
    return out_path


def convert_model(
    model_dir: Path,
    out_path: Path,
    outtype: str = "f16",
    *,
    metadata: Path | None = None,
    stage: str = "gguf",
    log_file: Path | None = None,
) -> Path:
    """Convert a Hugging Face model folder to one GGUF file with llama.cpp's own converter."""
    argv = converter_argv(Path(model_dir), out_path, outtype, metadata)
    return _run_converter(argv, out_path, "converter", stage, log_file)


def convert_lora(
    adapter_dir: Path,
    base_dir: Path,
    out_path: Path,
    outtype: str = "f16",
    *,
    stage: str = "gguf",
    log_file: Path | None = None,
) -> Path:
    """Convert a PEFT LoRA adapter folder to a GGUF adapter (for ``ADAPTER`` in a Modelfile)."""
    argv = lora_converter_argv(Path(adapter_dir), Path(base_dir), out_path, outtype)
    return _run_converter(argv, out_path, "LoRA converter", stage, log_file)
