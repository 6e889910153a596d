"""Stage "gguf": convert the merged model with llama.cpp's converter, quantize, and check the result.

Files are named ``<recipe name>-<type>.gguf``: the converter's full-precision file (``f16``,
``bf16`` or ``f32``), one file per quantization type, and for ``lora_gguf`` the adapter
(``<name>-lora-<type>.gguf``) with the base it applies to (``<name>-base-<type>.gguf``).

Every full model file is read back. The stage fails when its ``tokenizer.chat_template`` is
missing or differs from the template the model was trained with (ollama/ollama#8982,
ollama/ollama#8363), when its end-of-sequence token is not the trained tokenizer's, or when
llama.cpp would not stop at the template's end-of-turn token (ggml-org/llama.cpp#9606).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runner import llamacpp
from runner.errors import StageError
from runner.export import EXPORTS
from runner.recipe.fields import Operation, RecipePath
from runner.run.context import Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

STAGE = "gguf"
FullPrecision = Literal["f16", "bf16", "f32"]
QuantType = Literal[tuple(llamacpp.QUANT_TYPES)]  # type: ignore[valid-type]


@EXPORTS.register
class GgufExport(Operation):
    """Convert the merged model with llama.cpp's converter, then quantize."""

    type: Literal["gguf"]
    outtype: FullPrecision = "f16"
    """Type of the full-precision GGUF the converter writes."""
    quantize: tuple[QuantType, ...] = ("q8_0", "q4_k_m")
    """Quantized GGUFs made from it with llama.cpp's quantizer."""

    def produces(self) -> list[str]:
        """Every GGUF type this target writes, the full-precision one first."""
        return [self.outtype, *self.quantize]


@EXPORTS.register
class LoraGgufExport(Operation):
    """Convert the LoRA adapter to GGUF (convert_lora_to_gguf.py) for `ADAPTER` in a
    Modelfile."""

    type: Literal["lora_gguf"]
    outtype: Literal["f16", "bf16", "f32", "q8_0"] = "f16"
    base_gguf: RecipePath | None = None
    """A GGUF of the base model for the Modelfile's FROM line (otherwise the base is converted
    too)."""

    def base_type(self) -> str:
        """The type of the base GGUF converted to carry the adapter (full precision)."""
        return self.outtype if self.outtype in FullPrecision.__args__ else "f16"

    def base_path(self, recipe: Recipe, gguf_dir: Path) -> Path:
        """The base GGUF the adapter applies to: ``base_gguf``, else the one this stage wrote."""
        if self.base_gguf:
            return Path(self.base_gguf)
        return gguf_path(recipe, gguf_dir, f"base-{self.base_type()}")


def artifact_stem(recipe: Recipe) -> str:
    """The file-name stem of a recipe's GGUF files (its name, made file-system safe)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", recipe.name).strip("-") or "model"


def gguf_path(recipe: Recipe, gguf_dir: Path, kind: str) -> Path:
    """Where the GGUF of one ``kind`` lives: ``f16``, ``q4_k_m``, ``lora-f16``, ``base-f16``..."""
    return gguf_dir / f"{artifact_stem(recipe)}-{kind}.gguf"


def _diff_line(expected: str, actual: str) -> str:
    """The first line where two texts differ, for an error message."""
    exp, act = expected.splitlines(), actual.splitlines()
    for i, (a, b) in enumerate(zip(exp, act, strict=False), start=1):
        if a != b:
            return f"line {i}: expected {a!r}, found {b!r}"
    return f"expected {len(exp)} lines, found {len(act)}"


def verify_gguf(path: Path, model_dir: Path, end_of_turn: str | None) -> tuple[dict, list[str]]:
    """Read a converted GGUF back and list what is wrong with it (empty list when fine).

    ``model_dir`` is the Hugging Face folder it was converted from: its ``chat_template.jinja``
    is the trained template and its tokenizer says which token is end-of-sequence.
    ``end_of_turn`` is the string that ends an assistant turn in that template.
    """
    from runner.prompt.template import read_special_tokens, read_tokenizer_template

    meta = llamacpp.read_metadata(path)
    problems: list[str] = []
    trained = read_tokenizer_template(model_dir)
    found = meta["chat_template"]
    if not found:
        problems.append(
            f"{path.name} has no tokenizer.chat_template; Ollama and llama.cpp would fall back "
            "to a generic prompt (ollama/ollama#8982)"
        )
    elif found != trained:
        problems.append(
            f"{path.name}'s tokenizer.chat_template differs from the trained one in "
            f"{model_dir}/chat_template.jinja ({_diff_line(trained, found)})"
        )
    eos_text = read_special_tokens(model_dir)["eos_token"]
    eos = meta["tokens"].get("eos")
    if eos is None:
        problems.append(f"{path.name} declares no end-of-sequence token")
    elif eos_text and eos["text"] != eos_text:
        problems.append(
            f"{path.name}'s end-of-sequence token is {eos['text']!r} (id {eos['id']}), "
            f"but the trained tokenizer's eos_token is {eos_text!r}"
        )
    eot = meta["tokens"].get("eot")
    if end_of_turn and eot is not None and eot["text"] != end_of_turn:
        problems.append(
            f"{path.name}'s end-of-turn token is {eot['text']!r} (id {eot['id']}), "
            f"but the template ends turns with {end_of_turn!r}"
        )
    if end_of_turn:
        info = llamacpp.token_info(path, [end_of_turn])[end_of_turn]
        meta["end_of_turn"] = {"text": end_of_turn, **info}
        if len(info["ids"]) != 1 or not info["end_of_generation"]:
            problems.append(
                f"llama.cpp will not stop generating at the template's end-of-turn {end_of_turn!r} "
                f"(tokens {info['ids']}, end-of-generation: {info['end_of_generation']}): make it "
                "the tokenizer's eos_token when training (ggml-org/llama.cpp#9606)"
            )
    return meta, problems


def _summary(path: Path) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size}


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Convert, quantize, convert the adapter if asked, then verify every full model file."""
    from runner.prompt.template import read_template

    full_targets = recipe.exports("gguf")
    lora_targets = recipe.exports("lora_gguf")
    files: dict[str, Path] = {}
    checked: list[tuple[str, Path, Path, str | None]] = []  # kind, file, HF folder, end of turn
    template = read_template(ctx.require("train"))

    if full_targets:
        merged = ctx.input("merge")
        if merged is None or not (merged / "config.json").is_file():
            raise StageError(
                STAGE,
                "a `type: gguf` export converts the merged model, but this run has none "
                "(is the merge export disabled?)",
            )
        options = full_targets[0]
        outtype = options.outtype
        full = llamacpp.convert_model(
            merged, gguf_path(recipe, ctx.out, outtype), outtype, stage=STAGE, log_file=ctx.log_file
        )
        files[outtype] = full
        checked.append((outtype, full, merged, template.end_of_turn))
        for qtype in options.quantize:
            dst = gguf_path(recipe, ctx.out, qtype)
            files[qtype] = llamacpp.quantize(full, dst, qtype, stage=STAGE, log_file=ctx.log_file)
            checked.append((qtype, dst, merged, template.end_of_turn))

    if lora_targets:
        files.update(_export_adapter(recipe, ctx, lora_targets[0]))
        for kind, path in files.items():
            if kind.startswith("base-"):
                checked.append((kind, path, ctx.require("train"), template.end_of_turn))
        for kind, path in files.items():
            if kind.startswith("lora-") and llamacpp.read_metadata(path)["adapter_type"] != "lora":
                raise StageError(STAGE, f"{path.name} is not a LoRA adapter GGUF (adapter.type)")

    report: dict[str, Any] = {}
    problems: list[str] = []
    for kind, path, model_dir, end_of_turn in checked:
        meta, found = verify_gguf(path, model_dir, end_of_turn)
        report[kind] = {
            "file_type": meta["file_type"],
            "tensor_types": meta["tensor_types"],
            "tokens": meta["tokens"],
            "end_of_turn": meta.get("end_of_turn"),
            "chat_template_matches": not any("chat_template" in p for p in found),
        }
        problems.extend(found)
    if problems:
        raise StageError(STAGE, "; ".join(dict.fromkeys(problems)))
    return Outcome(
        summary={"files": {kind: _summary(p) for kind, p in files.items()}, "checks": report},
        outputs={kind: p.name for kind, p in files.items()},
    )


def _export_adapter(recipe: Recipe, ctx: StageContext, options: Any) -> dict[str, Path]:
    """The LoRA adapter as GGUF, and the base model it applies to unless ``base_gguf`` is given."""
    from runner.export.merge import find_adapter
    from runner.models import resolve_base

    outtype = options.outtype
    base_dir = resolve_base(recipe.model.base, recipe.model.revision)
    adapter = find_adapter(ctx.require("train"))
    files = {
        f"lora-{outtype}": llamacpp.convert_lora(
            adapter,
            base_dir,
            gguf_path(recipe, ctx.out, f"lora-{outtype}"),
            outtype,
            stage=STAGE,
            log_file=ctx.log_file,
        )
    }
    if options.base_gguf:
        ctx.notes.append(f"adapter applies to the given base GGUF {options.base_gguf}")
    else:
        base_type = options.base_type()
        source = _base_source(base_dir, ctx.require("train"), ctx.out / ".base-source")
        files[f"base-{base_type}"] = llamacpp.convert_model(
            source,
            gguf_path(recipe, ctx.out, f"base-{base_type}"),
            base_type,
            stage=STAGE,
            log_file=ctx.log_file,
        )
        shutil.rmtree(source)
    return files


def _base_source(base_dir: Path, train_dir: Path, folder: Path) -> Path:
    """The base model's weights with the trained tokenizer files: the adapter's GGUF base must
    end generation where training taught it to. Training may make the template's end of turn
    the eos token (DeepSeek-Coder's <|EOT|>, which llama.cpp does not stop on by name); a base
    converted with its own tokenizer_config.json would run on past every answer."""
    from runner.export.merge import TOKENIZER_FILES, copy_tokenizer_files

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for item in base_dir.iterdir():
        if item.name not in TOKENIZER_FILES:
            (folder / item.name).symlink_to(item.resolve())
    copy_tokenizer_files(train_dir, folder)
    return folder
