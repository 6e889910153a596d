"""Stage "ollama": a Modelfile whose TEMPLATE is derived from the chat template used in training.

Ollama guesses a template from the GGUF's Jinja by edit distance, or falls back to
``{{ .Prompt }}`` (ollama/ollama#8982), and its context defaults to 2048 tokens
(ollama/ollama PR #9545); so the Modelfile always states TEMPLATE, every stop string and
``num_ctx``. The TEMPLATE is generated from the recipe's Jinja template and verified against it
(``runner.prompt.gotemplate``), never written by hand.

``FROM`` points at a GGUF of the gguf stage by a path relative to the Modelfile
(``../gguf/<name>-<type>.gguf``), which Ollama resolves from the Modelfile's folder; with
``from: adapter`` it is the base model plus an ``ADAPTER`` line for the LoRA GGUF: the GGUF
file model.base names when it is one, or ``FROM name:tag`` for ``model.base: ollama:name:tag``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from runner import proc
from runner.errors import UserError
from runner.export import EXPORTS
from runner.recipe.fields import Operation, Section
from runner.run.context import Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

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


class OllamaParameters(Section):
    """Ollama `PARAMETER` lines."""

    temperature: float | None = Field(None, ge=0)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, ge=0, le=1)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, ge=0)
    repeat_last_n: int | None = None
    num_ctx: int | None = Field(None, ge=1)
    """Context length; at least train.seq_len (the default)."""
    num_predict: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """Extra stop strings, on top of every end token of the template."""


@EXPORTS.register
class OllamaExport(Operation):
    """An Ollama Modelfile whose TEMPLATE is derived from the training template."""

    type: Literal["ollama"]
    model: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?$")
    """Versioned Ollama model name, `name:tag`; default `<recipe name>:<version>` (the run's
    key as the tag when the recipe has no `version`)."""
    from_: str = Field("q4_k_m", alias="from")
    """Which GGUF the Modelfile uses: a quantization type listed under gguf.quantize,
    `f16`/`bf16`/`f32`, or `adapter` for FROM base + ADAPTER."""
    system: str | None = None
    """System prompt (defaults to prompt.system)."""
    parameters: OllamaParameters = OllamaParameters()
    create: Literal["auto", "always", "never"] = "auto"
    """Run `ollama create` when the binary is on PATH (`auto`), always, or never."""


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Write ``Modelfile`` for each ollama target and run ``ollama create`` when possible."""
    from runner import llamacpp
    from runner.prompt.template import read_template

    targets = recipe.exports("ollama")
    gguf_dir = ctx.require("gguf")
    # BOS/EOS and the end of turn as in training: the train stage's template artifact.
    template = read_template(ctx.require("train"))
    fim = trained_fim(ctx)
    models = []
    outputs: dict[str, str] = {}
    for index, target in enumerate(targets):
        model_file, adapter_file = model_files(recipe, target, gguf_dir)
        meta = llamacpp.read_metadata(model_file)
        tokens = meta["tokens"]
        special_stops = [tokens[r]["text"] for r in ("eos", "eot", "eom") if tokens.get(r)]
        model = model_name(target, ctx.key, recipe)
        options = {
            "target": target,
            "model": model,
            "special_stops": special_stops,
            "runtime_adds_bos": bool(meta["add_bos_token"]),
            "fim": fim,
        }
        name = "Modelfile" if index == 0 else f"Modelfile.{index}"
        pulled = pulled_base(recipe, target)
        if pulled:
            from runner.models.ollama_store import find_model

            layer = find_model(recipe.model.base).template
            if layer:
                options["own_template"] = (pulled, layer)
        # FROM names the GGUF relative to the Modelfile: both are in the run folder.
        text = render_modelfile(
            recipe,
            template,
            pulled or _relative(model_file, ctx.run_dir / "ollama"),
            adapter_relpath=_relative(adapter_file, ctx.run_dir / "ollama")
            if adapter_file
            else None,
            **options,
        )
        (ctx.out / name).write_text(text, encoding="utf-8")
        absolute = render_modelfile(
            recipe,
            template,
            pulled or str(model_file.resolve()),
            adapter_relpath=str(adapter_file.resolve()) if adapter_file else None,
            **options,
        )
        created = _create(model, absolute, target, ctx, name)
        outputs[model] = name
        models.append(
            {
                "model": model,
                "modelfile": name,
                "from": pulled or model_file.name,
                "adapter": adapter_file.name if adapter_file else None,
                "create_command": f"ollama create {model} -f {ctx.run_dir / 'ollama' / name}",
                "created": created,
                "stops": modelfile_stops(template, target, special_stops),
            }
        )
    return Outcome(summary={"models": models}, outputs=outputs)


def render_modelfile(
    recipe: Recipe,
    template: Any,
    gguf_relpath: str,
    *,
    target: OllamaExport,
    model: str,
    adapter_relpath: str | None = None,
    special_stops: Sequence[str] = (),
    runtime_adds_bos: bool = True,
    fim: Any = None,
    own_template: tuple[str, str] | None = None,
) -> str:
    """The Modelfile text (pure: no file is read or written).

    ``template`` is the recipe's ``ChatTemplate``; ``model`` the ``name:tag`` it is created as;
    ``special_stops`` the end tokens the GGUF declares (eos, eot); ``runtime_adds_bos`` whether
    its tokenizer adds BOS by itself; ``fim`` the fill-in-the-middle format the model was
    trained in (``runner.prompt.fim.FimFormat``), which adds a ``{{ .Suffix }}`` branch;
    ``own_template`` the Ollama base's ``(name, TEMPLATE)``, written instead of the derived one
    when it renders exactly what ``template`` renders.
    """
    from runner.prompt.gotemplate import ollama_template, template_mismatch

    derived = ollama_template(template, runtime_adds_bos=runtime_adds_bos)
    origin = [
        f"# TEMPLATE ({{form}}) is generated from the chat template '{template.name}' the model",
        "# was trained with, and renders the same text as it through Ollama's template engine.",
    ]
    if own_template is not None:
        base, own = own_template
        mismatch = template_mismatch(template, own, runtime_adds_bos=runtime_adds_bos)
        if mismatch is None:
            derived = replace(derived, text=own)
            origin = [
                f"# TEMPLATE is {base}'s own: it renders the same text as the chat template",
                f"# '{template.name}' the model was trained with, through Ollama's template engine.",
            ]
        else:
            origin.append(
                f"# {base}'s own TEMPLATE is not used: it does not render the training template "
                f"({mismatch[:160]})."
            )
    template_text, fim_lines = with_suffix_branch(derived.text, fim)
    system, system_note = modelfile_system(recipe, target)
    if system is not None and not derived.structure.takes_system:
        system, system_note = (
            None,
            (
                f"no SYSTEM: the chat template '{template.name}' takes no system prompt "
                "(prompt.system_fallback: fold puts it into the first user turn)"
            ),
        )
    form = f"the {derived.family} form" if derived.family else f"a {derived.form} form"
    lines = [
        f"# {model}: written by recipe-runner from recipe '{recipe.name}' ({recipe.path}).",
        f"# Create it with:  ollama create {model} -f Modelfile",
        *(line.replace("{form}", form) for line in origin),
        *(f"# note: {note}" for note in (*derived.notes, *([system_note] if system_note else []))),
        *fim_lines,
        f"FROM {gguf_relpath}",
    ]
    if adapter_relpath:
        lines.append(f"ADAPTER {adapter_relpath}")
    lines.append(f"TEMPLATE {_quote(template_text, 'TEMPLATE', always_triple=True)}")
    if system is not None:
        lines.append(f"SYSTEM {_quote(system, 'SYSTEM', always_triple=True)}")
    for stop in modelfile_stops(template, target, special_stops):
        lines.append(f"PARAMETER stop {_quote(stop, 'stop')}")
    lines.append(f"PARAMETER num_ctx {context_length(recipe, target)}")
    for key in PARAMETER_ORDER:
        value = getattr(target.parameters, key)
        if value is not None:
            lines.append(f"PARAMETER {key} {_number(value)}")
    return "\n".join(lines) + "\n"


def trained_fim(ctx: StageContext) -> Any:
    """The fill-in-the-middle format the train stage trained (its ``fim.json``), or None."""
    from runner.prompt.fim import read_fim

    return read_fim(ctx.require("train"))


def with_suffix_branch(template_text: str, fim: Any) -> tuple[str, list[str]]:
    """The TEMPLATE with a ``{{ .Suffix }}`` branch in the trained infill format (Ollama's
    ``/api/generate`` with ``suffix``), and the Modelfile comment saying so."""
    if fim is None:
        return template_text, []
    from runner.prompt.fim import ollama_suffix_branch

    comment = (
        f"# A request with a suffix (editor infill) gets the {fim.family} fill-in-the-middle "
        f"format ({fim.mode}) the model was trained on."
    )
    return ollama_suffix_branch(fim, template_text), [comment]


def model_files(recipe: Recipe, target: OllamaExport, gguf_dir: Path) -> tuple[Path, Path | None]:
    """The GGUF for ``FROM`` and, for ``from: adapter``, the LoRA GGUF for ``ADAPTER``.

    Which files exist was settled when the recipe was validated (``ollama_has_a_gguf``).
    """
    from runner.export.gguf import gguf_path

    if target.from_ == "adapter":
        lora = recipe.exports("lora_gguf")[0]
        adapter = gguf_path(recipe, gguf_dir, f"lora-{lora.outtype}")
        return lora.base_path(recipe, gguf_dir), adapter
    return gguf_path(recipe, gguf_dir, target.from_), None


def pulled_base(recipe: Recipe, target: OllamaExport) -> str | None:
    """``name:tag`` for FROM when the adapter applies to a model Ollama already has
    (``model.base: ollama:name:tag``): the Modelfile then builds on that very model."""
    from runner.models.ollama_store import is_ollama

    if target.from_ != "adapter" or not is_ollama(recipe.model.base):
        return None
    if any(t.base_gguf for t in recipe.exports("lora_gguf")):
        return None
    return recipe.model.base.removeprefix("ollama:")


def default_model(recipe: Recipe, target: OllamaExport) -> str:
    """The export's ``model``, else ``<name>:<version>`` (else the recipe's name, untagged)."""
    if target.model is not None:
        return target.model
    version = recipe.version
    return f"{recipe.name}:{version}" if version else recipe.name


def model_name(target: OllamaExport, key: str, recipe: Recipe) -> str:
    """``name:tag``; without a tag, the tag is the stage's key, so that two different trainings
    never overwrite each other's model."""
    name = default_model(recipe, target)
    if ":" in name.rsplit("/", 1)[-1]:
        return name
    return f"{name}:r{key[:10]}"


def context_length(recipe: Recipe, target: OllamaExport) -> int:
    """``num_ctx``: the training sequence length unless a larger one is asked for (a smaller
    one was refused when the recipe was validated: Ollama would cut prompts as long as the ones
    the model was trained on, ollama/ollama PR #9545)."""
    asked = target.parameters.num_ctx
    return max(recipe.train.seq_len, asked or 0)


def modelfile_stops(
    template: Any, target: OllamaExport, special_stops: Sequence[str] = ()
) -> list[str]:
    """Every stop: the template's end strings, the GGUF's end tokens, then the recipe's extras."""
    extra = target.parameters.stop
    return list(dict.fromkeys(s for s in (*template.stop, *special_stops, *extra) if s))


def modelfile_system(recipe: Recipe, target: OllamaExport) -> tuple[str | None, str | None]:
    """The SYSTEM text and, when ``prompt.system`` cannot be used, a note saying why."""
    from runner.prompt.system import render_system, system_variables

    if target.system is not None:
        return target.system, None
    system = recipe.prompt.system
    if system is None:
        return None, None
    variables = system_variables(system)
    if variables:
        return None, (
            f"no SYSTEM: prompt.system depends on each example ({', '.join(sorted(variables))}); "
            "set `system:` on the ollama export for a fixed one"
        )
    return render_system(system, {}), None


def _create(
    model: str, absolute_text: str, target: OllamaExport, ctx: StageContext, name: str
) -> bool:
    """Run ``ollama create`` (``create: auto`` when the binary is on PATH, or ``always``).

    The written Modelfile names its GGUF relative to the run folder, where this stage's output
    is not yet; ``absolute_text`` is the same Modelfile with absolute paths.
    """
    mode = target.create
    binary = shutil.which("ollama")
    command = f"ollama create {model} -f {ctx.run_dir / 'ollama' / name}"
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
        )
    finally:
        copy.unlink(missing_ok=True)
    return True


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
