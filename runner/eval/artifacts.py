"""Where the models to compare are: the fine-tuned one (merged or base + adapter), its exported
GGUF, and the base model converted to GGUF the same way (built once and cached)."""

from __future__ import annotations

from collections.abc import Mapping
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


def find_adapter(train_dir: Path) -> Path | None:
    """The final adapter folder under ``train/``: the shallowest ``adapter_config.json`` outside
    ``checkpoint-*`` folders (those hold intermediate adapters), else the newest checkpoint's."""
    found = sorted(train_dir.rglob("adapter_config.json"), key=lambda p: len(p.parts))
    final = [p for p in found if not any(part.startswith("checkpoint-") for part in p.parts)]
    if final:
        return final[0].parent
    if found:
        return max(found, key=lambda p: int(p.parent.name.rpartition("-")[2] or 0)).parent
    return None


def tuned_model(run_dir: Path, merged_dir: Path, train_dir: Path, base_dir: Path) -> TunedModel:
    if (merged_dir / "config.json").is_file():
        return TunedModel(merged_dir, None, merged_dir)
    adapter = find_adapter(train_dir)
    if adapter is None:
        raise StageError(
            "eval", f"no fine-tuned model in {run_dir}: neither merged/ nor an adapter in train/"
        )
    tokenizer_dir = adapter if (adapter / "tokenizer_config.json").is_file() else base_dir
    return TunedModel(base_dir, adapter, tokenizer_dir)


def _quant_name(path: Path) -> str:
    return path.stem.lower()


def choose_gguf(gguf_dir: Path, recipe: Any) -> tuple[Path, str] | None:
    """The exported GGUF users deploy, and its type (``q4_k_m``, ``f16``...).

    The Ollama export's ``from`` when set, else the recipe's quantizations in order, else the
    converter's full-precision output. LoRA-adapter GGUFs are never chosen here.
    """
    files = [p for p in sorted(gguf_dir.glob("*.gguf")) if not _is_adapter(p)]
    if not files:
        return None
    wanted: list[str] = []
    for target in recipe.exports("ollama"):
        if target.get("from") and target["from"] != "adapter":
            wanted.append(target["from"])
    for target in recipe.exports("gguf"):
        wanted += list(target.get("quantize", ()))
        wanted.append(target.get("outtype", "f16"))
    for qtype in wanted:
        match = [p for p in files if _quant_name(p).endswith(qtype.lower())]
        if match:
            return match[0], qtype.lower()
    return None


def _is_adapter(path: Path) -> bool:
    name = path.name.lower()
    return "lora" in name or "adapter" in name


def converted_gguf(
    model_dir: Path, qtype: str, outtype: str = "f16", *, label: str, log_file: Path
) -> Path:
    """A model folder converted (and quantized to ``qtype``) exactly as the GGUF export does it.

    Used for the base model, and for the fine-tuned one when the recipe exports no GGUF. Cached
    by the folder's file names, sizes and times and the llama.cpp versions: converting a 7B base
    for every evaluation would cost minutes and gigabytes.
    """
    from runner import llamacpp
    from runner.models.cache import build_once
    from runner.recipe.model import content_hash

    files = {
        p.relative_to(model_dir).as_posix(): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }
    key = content_hash(
        {
            "model": str(model_dir),
            "files": files,
            "qtype": qtype,
            "outtype": outtype,
            "llama.cpp": llamacpp.versions(),
        }
    )

    def build(tmp: Path) -> None:
        full = tmp / f"{label}-{outtype}.gguf"
        llamacpp.convert_model(model_dir, full, outtype, stage="eval", log_file=log_file)
        if qtype != outtype:
            llamacpp.quantize(
                full, tmp / f"{label}-{qtype}.gguf", qtype, stage="eval", log_file=log_file
            )
            full.unlink()

    folder = build_once("eval-gguf", f"{label}-{model_dir.name}", key, build)
    return folder / f"{label}-{qtype}.gguf"


def gguf_outtype(recipe: Any) -> str:
    targets: list[Mapping[str, Any]] = recipe.exports("gguf")
    return targets[0].get("outtype", "f16") if targets else "f16"
