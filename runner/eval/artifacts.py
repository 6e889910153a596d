"""Where the models to compare are: the fine-tuned one (merged or base + adapter), its exported
GGUF, and the base model converted to GGUF the same way (built once and cached)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import StageError


@dataclass
class TunedModel:
    """The fine-tuned model for ``transformers``: a merged folder, or the base plus an adapter."""

    model_dir: Path
    adapter_dir: Path | None
    tokenizer_dir: Path

    def describe(self) -> str:
        if self.adapter_dir is None:
            return f"merged model {self.model_dir}"
        return f"base {self.model_dir} + LoRA adapter {self.adapter_dir}"


def tuned_model(merged_dir: Path | None, train_dir: Path, base_dir: Path) -> TunedModel:
    """The merged model when the run has one, else the base with the trained adapter (peft), or
    the output of a full fine-tune. ``base_dir`` is the model the adapter was trained on (the
    merged parent, for a run that continued from one)."""
    from runner.export.merge import find_adapter

    if merged_dir is not None and (merged_dir / "config.json").is_file():
        return TunedModel(merged_dir, None, merged_dir)
    if (train_dir / "config.json").is_file() and not (train_dir / "adapter_config.json").is_file():
        return TunedModel(train_dir, None, train_dir)  # a full fine-tune: the output is a model
    try:
        adapter = find_adapter(train_dir)
    except StageError:
        raise StageError(
            "eval", f"no fine-tuned model: no merged model and no adapter in {train_dir}"
        ) from None
    tokenizer_dir = adapter if (adapter / "tokenizer_config.json").is_file() else base_dir
    return TunedModel(base_dir, adapter, tokenizer_dir)


@dataclass
class ExportedGGUF:
    """The exported GGUF to evaluate: a full model, or a base GGUF plus a LoRA GGUF."""

    path: Path
    qtype: str
    lora: Path | None = None


def choose_gguf(gguf_dir: Path, recipe: Any) -> ExportedGGUF | None:
    """The exported GGUF users deploy (names from ``runner.export.gguf.gguf_path``).

    The Ollama export's ``from`` when set, else the recipe's quantizations in order, else the
    converter's full-precision output; without a full model, the LoRA GGUF with its base.
    """
    from runner.export.gguf import gguf_path

    wanted: list[str] = []
    for target in recipe.exports("ollama"):
        if target.from_ != "adapter":
            wanted.append(target.from_)
    for target in recipe.exports("gguf"):
        wanted += [*target.quantize, target.outtype]
    for qtype in wanted:
        path = gguf_path(recipe, gguf_dir, qtype)
        if path.is_file():
            return ExportedGGUF(path, qtype)
    for target in recipe.exports("lora_gguf"):
        lora = gguf_path(recipe, gguf_dir, f"lora-{target.outtype}")
        base = target.base_path(recipe, gguf_dir)
        if lora.is_file() and base.is_file():
            return ExportedGGUF(base, target.base_type(), lora)
    return None


def convert_like_export(
    model_dir: Path, folder: Path, qtype: str, outtype: str, *, label: str, log_file: Path
) -> Path:
    """Convert ``model_dir`` into ``folder`` as the GGUF export does: the converter writes
    ``outtype``, then llama.cpp's quantizer makes ``qtype`` from it."""
    from runner import llamacpp

    full = folder / f"{label}-{outtype}.gguf"
    llamacpp.convert_model(model_dir, full, outtype, stage="eval", log_file=log_file)
    if qtype == outtype:
        return full
    quantized = llamacpp.quantize(
        full, folder / f"{label}-{qtype}.gguf", qtype, stage="eval", log_file=log_file
    )
    full.unlink()
    return quantized


def base_gguf(
    base_dir: Path, qtype: str, outtype: str = "f16", *, log_file: Path, label: str = "base"
) -> Path:
    """A model folder (the base, or a parent run's merged model) converted the same way as the
    export, built once per folder and type.

    Cached by the folder's file names, sizes and times and the llama.cpp versions: converting a
    7B base for every evaluation would cost minutes and gigabytes.
    """
    from runner import llamacpp
    from runner.hashing import content_hash
    from runner.models.cache import build_once

    files = {
        p.relative_to(base_dir).as_posix(): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(base_dir.rglob("*"))
        if p.is_file()
    }
    key = content_hash(
        {
            "model": str(base_dir),
            "files": files,
            "qtype": qtype,
            "outtype": outtype,
            "llama.cpp": llamacpp.versions(),
        }
    )

    def build(tmp: Path) -> None:
        convert_like_export(base_dir, tmp, qtype, outtype, label=label, log_file=log_file)

    folder = build_once("eval-gguf", f"{label}-{base_dir.name}", key, build)
    return folder / f"{label}-{qtype}.gguf"


def gguf_outtype(recipe: Any) -> str:
    """The converter's output type of the recipe's gguf export (its default without one)."""
    from runner.export import EXPORTS

    targets = recipe.exports("gguf")
    return (targets[0] if targets else EXPORTS.get("gguf")(type="gguf")).outtype
