"""Stage "merge": fold the trained LoRA into a 16-bit copy of the base with ``axolotl merge-lora``.

Two things Axolotl does not do are done here. ``merge-lora`` copies the tokenizer and chat
template from ``base_model``, not from the training output (its merge copies the base folder's
tokenizer files), so the trained
tokenizer files and ``chat_template.jinja`` are copied over them. And the merged folder is
checked: a merged model saved with a ``quantization_config`` or with integer weights cannot be
converted correctly (axolotl-ai-cloud/axolotl#1251).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from runner import proc
from runner.errors import StageError
from runner.export import EXPORTS
from runner.logs import OFFLINE
from runner.recipe.fields import Operation
from runner.run.context import Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

STAGE = "merge"


@EXPORTS.register
class MergeExport(Operation):
    """Merge the LoRA into a 16-bit copy of the base model (axolotl merge-lora)."""

    type: Literal["merge"]
    enabled: bool = True
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    """Weight type of the merged model."""
    from_dequantized: bool = False
    """Merge even when model.base is a GGUF file or an Ollama model: into its dequantized
    weights (quantizing the result again loses quality; the default exports only the adapter,
    applied to the GGUF you run)."""


# Every file a Hugging Face tokenizer and its chat template may be saved as.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
FLOAT_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
TORCH_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def find_adapter(train_dir: Path) -> Path:
    """The folder of the final adapter: the training output itself, not a ``checkpoint-*``."""
    if (train_dir / "adapter_config.json").is_file():
        return train_dir
    raise StageError(
        STAGE,
        f"no LoRA adapter (adapter_config.json) in the training output {train_dir}; "
        "did the train stage finish?",
    )


def find_axolotl_config(train_dir: Path) -> Path:
    """The Axolotl config the adapter was trained with (``train/axolotl.yaml``)."""
    path = train_dir / "axolotl.yaml"
    if not path.is_file():
        raise StageError(STAGE, f"no axolotl.yaml in {train_dir}; the train stage writes it")
    return path


def merge_argv(axolotl_yaml: Path, adapter_dir: Path, output_dir: Path) -> list[str]:
    """``axolotl merge-lora CONFIG --lora-model-dir ADAPTER --output-dir OUT`` (writes OUT/merged)."""
    axolotl = Path(sys.executable).parent / "axolotl"
    return [
        str(axolotl),
        "merge-lora",
        str(axolotl_yaml),
        "--lora-model-dir",
        str(adapter_dir),
        "--output-dir",
        str(output_dir),
    ]


def copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    """Copy the trained tokenizer and chat template over whatever ``merge-lora`` copied."""
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    return copied


def weight_dtypes(folder: Path) -> dict[str, int]:
    """Count of tensors per safetensors dtype (``BF16``, ``I8``...) over every weight file."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                dtype = f.get_slice(key).get_dtype()
                counts[dtype] = counts.get(dtype, 0) + 1
    return counts


def check_merged(folder: Path) -> list[str]:
    """Problems that make a merged folder unfit for conversion (empty list when fine)."""
    problems = []
    config_path = folder / "config.json"
    if not config_path.is_file():
        return [f"{folder} has no config.json"]
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "quantization_config" in config:
        method = config["quantization_config"].get("quant_method", "?")
        problems.append(
            f"merged config.json still has a quantization_config ({method}): the LoRA was merged "
            "into quantized weights; merge onto a 16-bit base (axolotl-ai-cloud/axolotl#1251)"
        )
    dtypes = weight_dtypes(folder)
    if not dtypes:
        problems.append(f"{folder} holds no .safetensors weights")
    not_float = {d: n for d, n in dtypes.items() if d not in FLOAT_DTYPES}
    if not_float:
        listed = ", ".join(f"{n} {d}" for d, n in sorted(not_float.items()))
        problems.append(f"merged weights are not all floating point: {listed} tensors")
    if not (folder / "chat_template.jinja").is_file() and not _config_has_template(folder):
        problems.append("merged folder has no chat template (chat_template.jinja)")
    return problems


def _config_has_template(folder: Path) -> bool:
    path = folder / "tokenizer_config.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("chat_template"))


def cast_weights(folder: Path, dtype: str) -> int:
    """Cast floating-point weights to the recipe's ``dtype``; returns how many tensors changed.

    ``merge-lora``'s memory-efficient path keeps the base's dtype; the recipe decides the dtype
    of the merged artifact.
    """
    import torch
    from safetensors.torch import load_file, save_file

    target = getattr(torch, dtype)
    changed = 0
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(str(path))
        for key, tensor in tensors.items():
            if tensor.is_floating_point() and tensor.dtype != target:
                tensors[key] = tensor.to(target)
                changed += 1
        save_file(tensors, str(path), metadata={"format": "pt"})
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("torch_dtype", "dtype"):
        if key in config:
            config[key] = dtype
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return changed


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Merge, copy the trained tokenizer, check; the merged model is written to ``ctx.out``."""
    targets = recipe.exports("merge")
    # A `gguf` export without a `merge` target brings the merge along with the defaults.
    options = targets[0] if targets else EXPORTS.get("merge")(type="merge")
    dtype = options.dtype
    train_dir = ctx.require("train")
    adapter = find_adapter(train_dir)
    axolotl_yaml = find_axolotl_config(train_dir)
    work = ctx.out / ".axolotl"
    # In the train folder: the config's paths are relative to it. Axolotl writes only under
    # --output-dir.
    proc.run(
        merge_argv(axolotl_yaml, adapter, work),
        stage=STAGE,
        log_file=ctx.log_file,
        env={**OFFLINE, "PATH": _path_with_venv()},
        cwd=train_dir,
    )
    produced = work / "merged"
    if not (produced / "config.json").is_file():
        raise StageError(
            STAGE, f"axolotl merge-lora wrote no model to {produced}; see {ctx.log_file}"
        )
    for item in produced.iterdir():
        shutil.move(str(item), ctx.out / item.name)
    shutil.rmtree(work)

    copied = copy_tokenizer_files(adapter, ctx.out)
    if "chat_template.jinja" not in copied:
        ctx.notes.append(f"the training output {adapter} has no chat_template.jinja")
    cast = cast_weights(ctx.out, dtype) if _needs_cast(ctx.out, dtype) else 0
    problems = check_merged(ctx.out)
    if problems:
        raise StageError(STAGE, "; ".join(problems))
    size = sum(p.stat().st_size for p in ctx.out.glob("*.safetensors"))
    return Outcome(
        summary={
            "dtype": dtype,
            "tensors_cast": cast,
            "weight_dtypes": weight_dtypes(ctx.out),
            "weights_bytes": size,
            "tokenizer_files_from_training": copied,
        },
        outputs={"merged": "."},
    )


def _needs_cast(folder: Path, dtype: str) -> bool:
    wanted = TORCH_DTYPES[dtype]
    return any(d != wanted for d in weight_dtypes(folder) if d in FLOAT_DTYPES)


def _path_with_venv() -> str:
    """``axolotl`` execs ``accelerate`` by name (``os.execvpe``), so the venv's bin must be on
    PATH."""
    return str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
