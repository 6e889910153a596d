"""Stage "gguf": convert the merged model with llama.cpp's converter, quantize, and check the result.

Files are named ``<recipe name>-<type>.gguf``: the converter's full-precision file (``f16``,
``bf16`` or ``f32``), one file per quantization type, and for ``lora_gguf`` the adapter
(``<name>-lora-<type>.gguf``) with the base it applies to (``<name>-base-<type>.gguf``).

Every full model file is read back. The stage fails when its ``tokenizer.chat_template`` is
missing or differs from the template the model was trained with (ollama/ollama#8982,
ollama/ollama#8363), when its end-of-sequence or BOS token is not the trained tokenizer's, when
llama.cpp would not stop at the template's end-of-turn token (ggml-org/llama.cpp#9606), when
llama.cpp would put a BOS before prompts the template starts without, when its context length
is not the model's (a GGUF with none makes llama.cpp warn ``n_ctx_train (0)`` and Ollama guess),
or when ``general.name``/``version``/``license`` are not the recipe's.
"""

from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

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
    version: str | None = None
    """`general.version` of the GGUF files (e.g. `v1`); `general.name` is the recipe's name
    and `general.license` model.license."""

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
        """The base GGUF the adapter applies to: ``base_gguf``, else the GGUF (file or Ollama
        model) model.base names, else the one this stage wrote."""
        from runner.models.gguf_base import is_gguf_base, locate

        if self.base_gguf:
            return Path(self.base_gguf)
        if is_gguf_base(recipe.model.base):
            return locate(recipe.model.base).path
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


# Keys the converter reads the context length from, in its order (conversion/base.py).
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_ctx",
    "n_positions",
    "max_length",
    "max_sequence_length",
    "model_max_length",
)


def gguf_identity(recipe: Recipe, target: GgufExport) -> dict[str, str]:
    """The ``general.*`` keys every full GGUF of the recipe carries."""
    found = {
        "general.name": recipe.name,
        "general.version": target.version,
        "general.license": recipe.model.license,
    }
    return {k: v for k, v in found.items() if v}


def model_context_length(model_dir: Path) -> int | None:
    """The context length the model was built for, read as the converter reads it."""
    import json

    path = model_dir / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    config = {**config.get("text_config", {}), **config}
    return next((int(config[k]) for k in CONTEXT_KEYS if config.get(k)), None)


def verify_gguf(
    path: Path,
    model_dir: Path,
    end_of_turn: str | None,
    identity: dict[str, str] | None = None,
) -> tuple[dict, list[str]]:
    """Read a converted GGUF back and list what is wrong with it (empty list when fine).

    ``model_dir`` is the Hugging Face folder it was converted from: its ``chat_template.jinja``
    is the trained template, its tokenizer says which tokens are BOS and end-of-sequence, its
    config the context length. ``end_of_turn`` is the string that ends an assistant turn in
    that template; ``identity`` the ``general.*`` values the file must carry.
    """
    from runner.prompt.template import read_special_tokens, read_tokenizer_template

    meta = llamacpp.read_metadata(path)
    problems: list[str] = []
    expected_ctx = model_context_length(model_dir)
    if not meta["context_length"]:
        problems.append(
            f"{path.name} declares no context length ({meta['architecture']}.context_length): "
            "llama.cpp warns n_ctx_train (0) and Ollama guesses; give the model's config.json "
            "max_position_embeddings"
        )
    elif expected_ctx and meta["context_length"] != expected_ctx:
        problems.append(
            f"{path.name}'s context length is {meta['context_length']}, the model's {expected_ctx}"
        )
    for key, value in (identity or {}).items():
        found = meta[key.removeprefix("general.")]
        if found != value:
            problems.append(f"{path.name}'s {key} is {found!r}, the recipe's {value!r}")
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
    special = read_special_tokens(model_dir)
    try:
        vocab = llamacpp.Vocab(path)
    except ValueError as exc:  # a vocabulary llama.cpp cannot load: say so
        vocab = None
        problems.append(f"llama.cpp cannot load {path.name}'s vocabulary: {exc}")
    try:
        problems.extend(_vocab_problems(path, meta, vocab, special, trained, end_of_turn))
    finally:
        if vocab is not None:
            vocab.close()
    return meta, problems


def _vocab_problems(
    path: Path,
    meta: dict,
    vocab: Any,
    special: dict[str, Any],
    trained: str,
    end_of_turn: str | None,
) -> list[str]:
    """Special tokens as trained, read from the file and from llama.cpp's loaded ``vocab``
    (None when it cannot load it)."""
    problems = _bos_problems(path, meta, special["bos_token"], trained, special["eos_token"], vocab)
    eos_text = special["eos_token"]
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
    if end_of_turn and vocab is not None:
        info = vocab.token_info([end_of_turn])[end_of_turn]
        meta["end_of_turn"] = {"text": end_of_turn, **info}
        if len(info["ids"]) != 1 or not info["end_of_generation"]:
            problems.append(
                f"llama.cpp will not stop generating at the template's end-of-turn {end_of_turn!r} "
                f"(tokens {info['ids']}, end-of-generation: {info['end_of_generation']}): make it "
                "the tokenizer's eos_token when training (ggml-org/llama.cpp#9606)"
            )
    return problems


def _bos_problems(
    path: Path, meta: dict, bos_text: str | None, template: str, eos_text: str | None, vocab: Any
) -> list[str]:
    """BOS as trained: the same token, and added by llama.cpp only when the trained template
    starts with it (then the Ollama TEMPLATE leaves it to the runtime)."""
    from runner.errors import UserError
    from runner.prompt.render import render_chat_template

    problems = []
    bos = meta["tokens"].get("bos")
    if bos_text and bos is not None and bos["text"] != bos_text:
        problems.append(
            f"{path.name}'s BOS token is {bos['text']!r} (id {bos['id']}), but the trained "
            f"tokenizer's bos_token is {bos_text!r}"
        )
    # llama.cpp (its server, llama-cpp-python's, Ollama's Jinja path) renders the GGUF's
    # template with the GGUF's own BOS/EOS texts: it must render what training rendered.
    gguf_tokens = {
        r: (meta["tokens"][r]["text"] if r in meta["tokens"] else None) for r in ("bos", "eos")
    }
    conversation = [{"role": "user", "content": "x"}]
    try:
        text = render_chat_template(
            template,
            conversation,
            add_generation_prompt=True,
            bos_token=bos_text,
            eos_token=eos_text,
        )
        served = render_chat_template(
            template,
            conversation,
            add_generation_prompt=True,
            bos_token=gguf_tokens["bos"],
            eos_token=gguf_tokens["eos"],
        )
    except UserError:
        return problems
    if served != text:
        problems.append(
            f"llama.cpp renders {path.name}'s chat template with its BOS/EOS "
            f"({gguf_tokens['bos']!r}/{gguf_tokens['eos']!r}) as {served[:60]!r}, training "
            f"rendered {text[:60]!r} (bos {bos_text!r}, eos {eos_text!r})"
        )
    starts = bool(bos_text) and text.startswith(bos_text)
    if vocab is not None:
        meta["runtime_adds_bos"] = vocab.adds_bos()
    else:  # what the file says; the vocabulary problem is reported
        meta["runtime_adds_bos"] = bool(meta["add_bos_token"])
    if meta["runtime_adds_bos"] and not starts:
        added = bos["text"] if bos else "BOS"
        problems.append(
            f"llama.cpp puts {added!r} before every prompt of {path.name} "
            "(tokenizer.ggml.add_bos_token), but the chat template the model was trained with "
            "starts without it"
        )
    return problems


def _summary(path: Path) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size}


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Convert, quantize, convert the adapter if asked, then verify every full model file."""
    from runner.prompt.template import read_template

    full_targets = recipe.exports("gguf")
    lora_targets = recipe.exports("lora_gguf")
    files: dict[str, Path] = {}
    checked: list[tuple[str, Path, Path, str | None]] = []  # kind, file, HF folder, end of turn
    identity: dict[str, str] = {}
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
        identity = gguf_identity(recipe, options)
        with _converter_input(merged, identity, ctx.out) as (source, override):
            full = llamacpp.convert_model(
                source,
                gguf_path(recipe, ctx.out, outtype),
                outtype,
                metadata=override,
                stage=STAGE,
                log_file=ctx.log_file,
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
        # The adapter's base is the base model, not the recipe's: no identity to check.
        meta, found = verify_gguf(
            path, model_dir, end_of_turn, {} if kind.startswith("base-") else identity
        )
        report[kind] = {
            "file_type": meta["file_type"],
            "context_length": meta["context_length"],
            "general": {k: meta[k] for k in ("name", "version", "license")},
            "runtime_adds_bos": meta.get("runtime_adds_bos"),
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


@contextmanager
def _converter_input(merged: Path, identity: dict[str, str], scratch: Path):
    """The folder and ``--metadata`` file the converter reads: ``general.name``/``version``
    come from the metadata file; ``general.license`` only from a model card's front matter
    (gguf-py ``Metadata.load`` reads no license from the file), so a license is given through
    a folder of links to the merged model with a README.md that names it."""
    override = scratch / ".metadata.json"
    override.write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
    source = merged
    if "general.license" in identity:
        source = scratch / ".convert-source"
        source.mkdir()
        for item in merged.iterdir():
            if item.name != "README.md":
                (source / item.name).symlink_to(item.resolve())
        card = yaml.safe_dump({"license": identity["general.license"]}, sort_keys=False)
        (source / "README.md").write_text(f"---\n{card}---\n", encoding="utf-8")
    try:
        yield source, override
    finally:
        override.unlink(missing_ok=True)
        if source != merged:
            shutil.rmtree(source)


def _export_adapter(recipe: Recipe, ctx: StageContext, options: Any) -> dict[str, Path]:
    """The LoRA adapter as GGUF, and the base model it applies to unless ``base_gguf`` is given
    or model.base is a GGUF already."""
    from runner.export.merge import find_adapter
    from runner.models import resolve_base
    from runner.models.gguf_base import is_gguf_base, locate

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
    elif is_gguf_base(recipe.model.base):
        ctx.notes.append(
            f"adapter applies to the GGUF model.base names: {locate(recipe.model.base).from_ref}"
        )
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
        shutil.rmtree(source.parent)
    return files


def _base_source(base_dir: Path, train_dir: Path, folder: Path) -> Path:
    """The base model's weights with the trained tokenizer files: the adapter's GGUF base must
    end generation where training taught it to. Training may make the template's end of turn
    the eos token (DeepSeek-Coder's <|EOT|>, which llama.cpp does not stop on by name); a base
    converted with its own tokenizer_config.json would run on past every answer."""
    from runner.export.merge import TOKENIZER_FILES, copy_tokenizer_files

    if folder.exists():
        shutil.rmtree(folder)
    folder = folder / base_dir.name  # the converter names the model after its folder
    folder.mkdir(parents=True)
    for item in base_dir.iterdir():
        if item.name not in TOKENIZER_FILES:
            (folder / item.name).symlink_to(item.resolve())
    copy_tokenizer_files(train_dir, folder)
    return folder
