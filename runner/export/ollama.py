"""Stage "ollama": a Modelfile whose TEMPLATE is derived from the chat template used in training.

Ollama guesses a template from the GGUF's Jinja by edit distance, or falls back to
``{{ .Prompt }}`` (ollama/ollama#8982), and its context defaults to 2048 tokens
(ollama/ollama PR #9545); so the Modelfile always states TEMPLATE, every stop string and
``num_ctx``. The TEMPLATE is generated from the recipe's Jinja template and verified against it
(``runner.prompt.gotemplate``), never written by hand.

``FROM`` points at a GGUF of the gguf stage by a path relative to the Modelfile
(``../gguf/<name>-<type>.gguf``), which Ollama resolves from the Modelfile's folder; with
``from: adapter`` it is the base model plus an ``ADAPTER`` line for the LoRA GGUF.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner import proc
from runner.errors import UserError
from runner.recipe.model import Recipe, content_hash
from runner.registry import did_you_mean
from runner.stage import StageContext

STAGE = "ollama"
FULL_PRECISION = ("f16", "bf16", "f32")
# PARAMETER lines in the order they are written (num_ctx and stop are written first).
PARAMETER_ORDER = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "num_predict",
    "seed",
)


def run(recipe: Recipe, ctx: StageContext) -> dict[str, Any]:
    """Write ``Modelfile`` for each ollama target and run ``ollama create`` when possible."""
    from runner import llamacpp
    from runner.prompt.template import load_template

    targets = recipe.exports("ollama")
    if not targets:
        raise UserError("no `type: ollama` target under export:")
    gguf_dir = ctx.stage_dir("gguf")
    stage_dir = ctx.stage_dir(STAGE)
    tokenizer_dir = _trained_tokenizer(ctx)
    models = []
    for index, target in enumerate(targets):
        model_file, adapter_file = model_files(recipe, target, gguf_dir)
        meta = llamacpp.read_metadata(model_file)
        tokens = meta["tokens"]
        adds_bos = bool(meta["add_bos_token"])
        if tokenizer_dir is not None:
            # BOS/EOS as in training. Not the GGUF's: Qwen2's GGUF names <|endoftext|> as BOS
            # (never added), where the Hugging Face tokenizer has no BOS at all.
            template = load_template(recipe["prompt"], tokenizer_dir)
        else:
            template = load_template(
                recipe["prompt"],
                bos_token=(tokens.get("bos") or {}).get("text") if adds_bos else None,
                eos_token=(tokens.get("eos") or {}).get("text"),
            )
        special_stops = [tokens[r]["text"] for r in ("eos", "eot", "eom") if tokens.get(r)]
        options = {
            "target": target,
            "special_stops": special_stops,
            "runtime_adds_bos": adds_bos,
        }
        text = render_modelfile(
            recipe,
            template,
            _relative(model_file, stage_dir),
            adapter_relpath=_relative(adapter_file, stage_dir) if adapter_file else None,
            **options,
        )
        name = "Modelfile" if index == 0 else f"Modelfile.{index}"
        path = ctx.out / name
        path.write_text(text, encoding="utf-8")
        model = model_name(recipe, target)
        absolute = render_modelfile(
            recipe,
            template,
            str(model_file.resolve()),
            adapter_relpath=str(adapter_file.resolve()) if adapter_file else None,
            **options,
        )
        created = _create(model, absolute, target, ctx, name)
        models.append(
            {
                "model": model,
                "modelfile": str(path),
                "from": str(model_file),
                "adapter": str(adapter_file) if adapter_file else None,
                "create_command": f"ollama create {model} -f {stage_dir / name}",
                "created": created,
                "stops": modelfile_stops(template, target, special_stops),
            }
        )
    return {
        "outputs": {m["model"]: m["modelfile"] for m in models},
        "models": models,
    }


def render_modelfile(
    recipe: Recipe,
    template: Any,
    gguf_relpath: str,
    *,
    target: Mapping[str, Any] | None = None,
    adapter_relpath: str | None = None,
    special_stops: Sequence[str] = (),
    runtime_adds_bos: bool = True,
) -> str:
    """The Modelfile text (pure: no file is read or written).

    ``template`` is the recipe's ``ChatTemplate``; ``special_stops`` the end tokens the GGUF
    declares (eos, eot); ``runtime_adds_bos`` whether its tokenizer adds BOS by itself.
    """
    from runner.prompt.gotemplate import ollama_template

    target = target if target is not None else _first_target(recipe)
    derived = ollama_template(template, runtime_adds_bos=runtime_adds_bos)
    system, system_note = modelfile_system(recipe, target)
    model = model_name(recipe, target)
    lines = [
        f"# {model}: written by recipe-runner from recipe '{recipe.name}' ({recipe.path}).",
        f"# Create it with:  ollama create {model} -f Modelfile",
        f"# TEMPLATE is generated from the chat template '{template.name}' the model was trained",
        "# with, and was checked to render the same text as it.",
        *(f"# note: {note}" for note in (*derived.notes, *([system_note] if system_note else []))),
        f"FROM {gguf_relpath}",
    ]
    if adapter_relpath:
        lines.append(f"ADAPTER {adapter_relpath}")
    lines.append(f"TEMPLATE {_quote(derived.text, 'TEMPLATE', always_triple=True)}")
    if system is not None:
        lines.append(f"SYSTEM {_quote(system, 'SYSTEM', always_triple=True)}")
    for stop in modelfile_stops(template, target, special_stops):
        lines.append(f"PARAMETER stop {_quote(stop, 'stop')}")
    parameters = target.get("parameters", {})
    lines.append(f"PARAMETER num_ctx {context_length(recipe, target)}")
    for key in PARAMETER_ORDER:
        if key in parameters:
            lines.append(f"PARAMETER {key} {_number(parameters[key])}")
    return "\n".join(lines) + "\n"


def model_files(
    recipe: Recipe, target: Mapping[str, Any], gguf_dir: Path
) -> tuple[Path, Path | None]:
    """The GGUF for ``FROM`` and, for ``from: adapter``, the LoRA GGUF for ``ADAPTER``."""
    from runner.export.gguf import gguf_path

    choice = target.get("from", "q4_k_m")
    if choice == "adapter":
        lora = recipe.exports("lora_gguf")
        if not lora:
            raise UserError(
                "export ollama `from: adapter` needs a `type: lora_gguf` target under export:"
            )
        outtype = lora[0].get("outtype", "f16")
        adapter = gguf_path(recipe, gguf_dir, f"lora-{outtype}")
        if lora[0].get("base_gguf"):
            return Path(lora[0]["base_gguf"]), adapter
        base_type = outtype if outtype in FULL_PRECISION else "f16"
        return gguf_path(recipe, gguf_dir, f"base-{base_type}"), adapter
    full = recipe.exports("gguf")
    if not full:
        raise UserError(
            f"export ollama `from: {choice}` needs a `type: gguf` target under export: "
            "(or `from: adapter` with a `type: lora_gguf` target)"
        )
    available = [full[0].get("outtype", "f16"), *full[0].get("quantize", ("q8_0", "q4_k_m"))]
    if choice not in available:
        raise UserError(
            f"export ollama `from: {choice}` is not a GGUF the gguf target writes"
            f"{did_you_mean(choice, available)} (it writes: {', '.join(available)}, or use "
            "`from: adapter`)"
        )
    return gguf_path(recipe, gguf_dir, choice), None


def model_name(recipe: Recipe, target: Mapping[str, Any]) -> str:
    """``name:tag``; without a tag, the tag is a hash of the resolved recipe, so that two
    different trainings never overwrite each other's model."""
    name = str(target["model"])
    if ":" in name.rsplit("/", 1)[-1]:
        return name
    return f"{name}:r{content_hash(recipe.to_dict())[:10]}"


def context_length(recipe: Recipe, target: Mapping[str, Any]) -> int:
    """``num_ctx``: the training sequence length unless a larger one is asked for."""
    seq_len = int(recipe.get("train.seq_len", 2048))
    asked = target.get("parameters", {}).get("num_ctx")
    if asked is None:
        return seq_len
    if int(asked) < seq_len:
        raise UserError(
            f"export ollama parameters.num_ctx {asked} is below train.seq_len {seq_len}: Ollama "
            "would cut prompts as long as the ones the model was trained on "
            "(ollama/ollama PR #9545); raise num_ctx or leave it out"
        )
    return int(asked)


def modelfile_stops(
    template: Any, target: Mapping[str, Any], special_stops: Sequence[str] = ()
) -> list[str]:
    """Every stop: the template's end strings, the GGUF's end tokens, then the recipe's extras."""
    extra = target.get("parameters", {}).get("stop", ())
    return list(dict.fromkeys(s for s in (*template.stop, *special_stops, *extra) if s))


def modelfile_system(recipe: Recipe, target: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The SYSTEM text and, when ``prompt.system`` cannot be used, a note saying why."""
    from runner.prompt.system import render_system, system_variables

    if target.get("system") is not None:
        return str(target["system"]), None
    prompt = recipe.get("prompt") or {}
    if prompt.get("system") is None:
        return None, None
    variables = system_variables(prompt)
    if variables:
        return None, (
            f"no SYSTEM: prompt.system depends on each example ({', '.join(sorted(variables))}); "
            "set `system:` on the ollama export for a fixed one"
        )
    return render_system(prompt, {}), None


def _create(
    model: str, absolute_text: str, target: Mapping[str, Any], ctx: StageContext, name: str
) -> bool:
    """Run ``ollama create`` (``create: auto`` when the binary is on PATH, or ``always``).

    The written Modelfile names its GGUF relative to the run folder, where this stage's output
    is not yet; ``absolute_text`` is the same Modelfile with absolute paths.
    """
    mode = target.get("create", "auto")
    binary = shutil.which("ollama")
    command = f"ollama create {model} -f {ctx.stage_dir(STAGE) / name}"
    if mode == "never" or (mode == "auto" and binary is None):
        why = "create: never" if mode == "never" else "no `ollama` binary on PATH"
        ctx.notes.append(f"{why}; to add the model to Ollama run: {command}")
        return False
    if binary is None:
        raise UserError("export ollama `create: always`, but no `ollama` binary is on PATH")
    copy = ctx.out / f".{name}.create"
    copy.write_text(absolute_text, encoding="utf-8")
    try:
        proc.run(
            [binary, "create", model, "-f", copy],
            stage=STAGE,
            log_file=ctx.log_file,
            dry_run=ctx.dry_run,
        )
    finally:
        copy.unlink(missing_ok=True)
    return not ctx.dry_run


def _trained_tokenizer(ctx: StageContext) -> Path | None:
    """The tokenizer saved with the trained model (merged folder, else the training output)."""
    for folder in (ctx.stage_dir("merge"), ctx.stage_dir("train")):
        if (folder / "tokenizer_config.json").is_file():
            return folder
    return None


def _first_target(recipe: Recipe) -> Mapping[str, Any]:
    targets = recipe.exports("ollama")
    if not targets:
        raise UserError("no `type: ollama` target under export:")
    return targets[0]


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to the Modelfile's folder when both are in the run, else absolute."""
    if not path.is_absolute():
        return str(path)
    rel = os.path.relpath(path, start)
    return str(path) if rel.startswith(os.pardir + os.sep + os.pardir) else rel


def _quote(value: str, what: str, always_triple: bool = False) -> str:
    """A value as Ollama's Modelfile parser reads it back unchanged (parser/parser.go)."""
    if '"""' in value:
        raise UserError(f'{what} {value[:40]!r}... contains """, which a Modelfile cannot hold')
    if always_triple or '"' in value or "\n" in value:
        return f'"""{value}"""'
    return f'"{value}"'


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"export ollama parameter value {value!r} is not a number")
    return repr(value)
