"""Cross-field rules: small named checks over a typed recipe, in the user's key names.

Each rule takes the validated ``Recipe`` (defaults filled, paths absolute) and yields
``Problem``s. Facts about this machine (no CUDA) are warnings here: recipes are written on
laptops and trained on GPU machines; the run itself turns them into errors when it starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import UserError
from runner.paths import looks_local, names_template_file, path_problem
from runner.recipe.problems import Problem
from runner.registry import did_you_mean

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

RULES: list[Callable[[Recipe], Iterator[Problem]]] = []


def rule(fn: Callable[[Recipe], Iterator[Problem]]) -> Callable[[Recipe], Iterator[Problem]]:
    RULES.append(fn)
    return fn


def check_rules(recipe: Recipe) -> list[Problem]:
    problems: list[Problem] = []
    for fn in RULES:
        problems.extend(fn(recipe))
    return problems


def _targets(recipe: Recipe, type_name: str) -> list[tuple[int, Any]]:
    return [(i, t) for i, t in enumerate(recipe.export) if t.type == type_name]


def cuda_available() -> bool:
    """Cheap CUDA check that does not import torch (validate must stay fast)."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


@rule
def split_fractions_sum_to_one(recipe: Recipe) -> Iterator[Problem]:
    total = sum(recipe.split.fractions().values())
    if abs(total - 1.0) > 1e-6:
        yield Problem(("split",), f"split.train + split.val + split.test must be 1 (got {total:g})")


@rule
def source_paths_exist(recipe: Recipe) -> Iterator[Problem]:
    for index, source in enumerate(recipe.sources):
        if source.type == "hf_dataset" and not looks_local(source.path):
            continue  # a hub id; the data stage loads it when online (resolved paths are local)
        problem = path_problem(source.path)
        if problem:
            yield Problem(("sources", index, "path"), problem)


@rule
def source_names_unique(recipe: Recipe) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for index, source in enumerate(recipe.sources):
        if source.name is None:
            continue
        if source.name in seen:
            yield Problem(
                ("sources", index, "name"),
                f"source name '{source.name}' is already used by sources[{seen[source.name]}]",
            )
        seen[source.name] = index


@rule
def prompt_template_exists(recipe: Recipe) -> Iterator[Problem]:
    from runner.prompt.template import TOKENIZER, template_names

    template = recipe.prompt.template
    if template == TOKENIZER:
        return
    if names_template_file(template):
        problem = path_problem(template)
        if problem:
            yield Problem(("prompt", "template"), problem)
        return
    known = template_names()
    if template not in known:
        yield Problem(
            ("prompt", "template"),
            f"'{template}' is not a known template{did_you_mean(template, known)} "
            f"(known: {', '.join(known)}, tokenizer, or a path to a .jinja file)",
        )


@rule
def system_prompt_fits_the_template(recipe: Recipe) -> Iterator[Problem]:
    """A template that refuses or drops a system message, and a recipe that sets one: say so
    and offer the choice (prompt.system_fallback) before any data is built."""
    from runner.prompt.template import system_support

    prompt = recipe.prompt
    source = _template_source(recipe)
    if source is None:
        return
    support, reason = system_support(source)
    if support == "takes":
        if prompt.system_fallback is not None:
            yield Problem(
                ("prompt", "system_fallback"),
                f"the template '{prompt.template}' takes a system message itself; "
                "prompt.system_fallback has no effect",
                warning=True,
            )
        return
    if prompt.system is None or prompt.system_fallback is not None:
        return
    what = (
        f"refuses a system message ({reason})" if support == "refused" else "drops a system message"
    )
    yield Problem(
        ("prompt", "system"),
        f"the template '{prompt.template}' {what}, but prompt.system is set: choose "
        "prompt.system_fallback: fold (the system prompt opens the first user turn, followed "
        "by a blank line, as the family's newer templates do) or drop (train and serve "
        "without it)",
    )


def _template_source(recipe: Recipe) -> str | None:
    """The Jinja text of prompt.template when it can be read without building anything: a
    shipped name, a .jinja file, or the tokenizer's own of a tiny or local base."""
    from runner.errors import UserError
    from runner.prompt.template import TEMPLATES_DIR, TOKENIZER, read_tokenizer_template

    choice = recipe.prompt.template
    try:
        if names_template_file(choice):
            path = Path(choice)
            return path.read_text(encoding="utf-8") if path.is_file() else None
        if choice != TOKENIZER:
            path = TEMPLATES_DIR / f"{choice}.jinja"
            return path.read_text(encoding="utf-8") if path.is_file() else None
        base = recipe.model.base
        if base.startswith("tiny:"):
            from runner.models.tiny import TINY_MODELS, family_template

            spec = TINY_MODELS.get(base[len("tiny:") :])
            return family_template(spec) if spec else None
        if looks_local(base) or Path(base).is_absolute():
            return read_tokenizer_template(Path(base))
    except UserError:
        return None  # reported by prompt_template_exists, or read when the run starts
    return None


@rule
def tiny_family_known(recipe: Recipe) -> Iterator[Problem]:
    from runner.models.tiny import PREFIX, TINY_MODELS

    base = recipe.model.base
    families = tuple(TINY_MODELS)
    if base.startswith(PREFIX) and base[len(PREFIX) :] not in families:
        family = base[len(PREFIX) :]
        yield Problem(
            ("model", "base"),
            f"'{family}' is not a built-in tiny model{did_you_mean(family, families)} "
            f"(known: {', '.join(PREFIX + f for f in families)})",
        )


@rule
def base_is_trainable(recipe: Recipe) -> Iterator[Problem]:
    """Axolotl trains decoder-only causal language models; refuse the rest before any run."""
    from runner.models.trainable import untrainable_reason

    reason = untrainable_reason(recipe.model.base)
    if reason:
        yield Problem(("model", "base"), reason)


@rule
def gguf_base_is_dequantizable(recipe: Recipe) -> Iterator[Problem]:
    """A GGUF or Ollama base must be of an architecture and tensor types transformers' GGUF
    loader dequantizes; read from the file's header, before any run. Whether it is on this
    machine is a warning here (the recipe may be trained elsewhere); the run refuses it."""
    from runner.errors import UserError
    from runner.models.gguf_base import is_gguf_base, locate, unsupported_reason

    base = recipe.model.base
    if not is_gguf_base(base):
        return
    try:
        located = locate(base)
    except UserError as exc:
        message = str(exc).removeprefix("model.base: ")
        yield Problem(("model", "base"), message, warning=True)
        return
    reason = unsupported_reason(located.path, located.from_ref)
    if reason:
        yield Problem(("model", "base"), reason)


@rule
def gguf_base_exports_its_adapter(recipe: Recipe) -> Iterator[Problem]:
    """A GGUF base has no original 16-bit weights: merging into dequantized (say Q4_K) weights
    and quantizing again loses quality, so only the adapter is exported unless asked."""
    from runner.models.gguf_base import is_gguf_base

    if not is_gguf_base(recipe.model.base):
        return
    for index, target in _targets(recipe, "merge"):
        if target.enabled and not target.from_dequantized:
            yield Problem(
                ("export", index, "type"),
                f"model.base '{recipe.model.base}' is a GGUF: there are no original 16-bit "
                "weights to merge into, and merging into its dequantized weights then "
                "quantizing again loses quality. Export `- type: lora_gguf` (with an ollama "
                "export `from: adapter`: FROM the same model + ADAPTER), or set "
                "from_dequantized: true to merge anyway",
            )


@rule
def local_base_exists(recipe: Recipe) -> Iterator[Problem]:
    from runner.models.gguf_base import is_gguf_base

    if is_gguf_base(recipe.model.base):
        return  # gguf_base_is_dequantizable
    if looks_local(recipe.model.base) or Path(recipe.model.base).is_absolute():
        problem = path_problem(recipe.model.base)
        if problem:
            yield Problem(("model", "base"), problem)


@rule
def qlora_needs_lora(recipe: Recipe) -> Iterator[Problem]:
    if recipe.model.quantization != "none" and not recipe.lora.enabled:
        yield Problem(
            ("model", "quantization"),
            f"model.quantization: {recipe.model.quantization} trains an adapter on a "
            "quantized base, so it needs lora.enabled: true",
        )


@rule
def qlora_without_cuda(recipe: Recipe) -> Iterator[Problem]:
    if recipe.model.quantization == "4bit" and not cuda_available():
        fallback = (
            "it will train a 16-bit LoRA instead (model.cpu_fallback: true)"
            if recipe.model.cpu_fallback
            else "the run will refuse to start here (set model.cpu_fallback: true to train a "
            "16-bit LoRA instead)"
        )
        yield Problem(
            ("model", "quantization"),
            f"4-bit QLoRA needs a CUDA GPU and none is visible on this machine; {fallback}",
            warning=True,
        )


@rule
def exports_have_what_they_need(recipe: Recipe) -> Iterator[Problem]:
    merges = _targets(recipe, "merge")
    merge_on = any(t.enabled for _, t in merges)
    lora_on = recipe.lora.enabled
    for index, _ in _targets(recipe, "gguf"):
        if not lora_on:
            continue  # a full fine-tune's output is already a whole model
        if not merges:
            yield Problem(
                ("export", index),
                "a gguf export needs a merged model: add `- type: merge` to export",
            )
        elif not merge_on:
            m = merges[0][0]
            yield Problem(
                ("export", m, "enabled"),
                f"export[{index}] (gguf) needs the merged model, but this merge is disabled",
            )
    for index, _ in merges:
        if not lora_on:
            yield Problem(
                ("export", index), "merge needs a LoRA adapter, but lora.enabled is false"
            )
    for index, _ in _targets(recipe, "lora_gguf"):
        if not lora_on:
            yield Problem(
                ("export", index), "lora_gguf exports the LoRA adapter, but lora.enabled is false"
            )


@rule
def ollama_has_a_gguf(recipe: Recipe) -> Iterator[Problem]:
    available: set[str] = set()
    for _, target in _targets(recipe, "gguf"):
        available.update(target.produces())
    for index, target in _targets(recipe, "ollama"):
        source = target.from_
        if source == "adapter":
            if not _targets(recipe, "lora_gguf"):
                yield Problem(
                    ("export", index, "from"),
                    "from: adapter needs a `- type: lora_gguf` export for the ADAPTER line",
                )
        elif source not in available:
            have = ", ".join(sorted(available)) or "none: add a `- type: gguf` export"
            yield Problem(
                ("export", index, "from"),
                f"'{source}' is not produced by a gguf export (available: {have})",
            )
        num_ctx = target.parameters.num_ctx
        seq_len = recipe.train.seq_len
        if num_ctx is not None and num_ctx < seq_len:
            yield Problem(
                ("export", index, "parameters", "num_ctx"),
                f"num_ctx {num_ctx} is below train.seq_len {seq_len}: Ollama would silently "
                "truncate prompts the model was trained on",
            )


@rule
def compute_is_consistent(recipe: Recipe) -> Iterator[Problem]:
    compute = recipe.compute
    for key in ("gpus", "nodes"):
        count = getattr(compute, key)
        if count > 1 and compute.strategy == "single":
            yield Problem(
                ("compute", "strategy"),
                f"compute.{key} is {count}: choose compute.strategy ddp, fsdp or deepspeed",
            )
    if compute.strategy == "fsdp" and recipe.model.quantization == "8bit":
        yield Problem(
            ("compute", "strategy"), "fsdp cannot shard an 8-bit base; use ddp or deepspeed"
        )


@rule
def compute_target_exists(recipe: Recipe) -> Iterator[Problem]:
    """The target's profile is found and valid now; whether it answers is checked when the run
    starts (and by `recipe doctor --target`)."""
    from runner.compute.profiles import recipe_target

    compute = recipe.compute
    if compute.target is None:
        if compute.nodes > 1:
            yield Problem(
                ("compute", "nodes"),
                f"compute.nodes is {compute.nodes}: training on several machines needs "
                "compute.target, a ray, slurm or skypilot profile (or a local one, each machine "
                "started by hand)",
            )
        return
    try:
        recipe_target(recipe)
    except UserError as exc:
        yield Problem(("compute", "target"), str(exc))


@rule
def gate_is_measurable(recipe: Recipe) -> Iterator[Problem]:
    evaluation = recipe.eval
    gate = evaluation.gate
    for key in ("min_improvement", "min_loss_improvement"):
        if getattr(gate, key) is not None and not evaluation.compare_base:
            yield Problem(
                ("eval", "gate", key),
                f"eval.gate.{key} compares with the base model, but eval.compare_base is false",
            )
    checks = {c.type for c in evaluation.checks}
    for name in gate.checks:
        if name not in checks:
            yield Problem(
                ("eval", "gate", "checks", name),
                f"no '{name}' check in eval.checks{did_you_mean(name, sorted(checks))}",
            )


@rule
def commands_need_permission(recipe: Recipe) -> Iterator[Problem]:
    evaluation = recipe.eval
    for index, check in enumerate(evaluation.checks):
        if check.type == "command" and not evaluation.allow_commands:
            yield Problem(
                ("eval", "checks", index),
                "command checks run programs; they only run when eval.allow_commands is true "
                "for this recipe (set it after reading the command)",
                warning=True,
            )


@rule
def pattern_checks_use_the_filter_words(recipe: Recipe) -> Iterator[Problem]:
    """`type: forbid|require` + `patterns:` is the old spelling of the `regex` check."""
    for index, check in enumerate(recipe.eval.checks):
        if check.type in ("forbid", "require"):
            yield Problem(
                ("eval", "checks", index, "type"),
                f"`type: {check.type}` with `patterns:` is deprecated; write `type: regex` with "
                f"`{check.type}: [...]`, the same words as the regex filter",
                warning=True,
            )


@rule
def base_is_convertible(recipe: Recipe) -> Iterator[Problem]:
    """Warn before any training time is spent when llama.cpp's pinned converter would refuse the
    base."""
    if not (_targets(recipe, "gguf") or _targets(recipe, "lora_gguf")):
        return
    from runner.models.convertible import check_convertible

    for message in check_convertible(recipe.model.base):
        yield Problem(("model", "base"), message, warning=True)


@rule
def early_stopping_needs_eval_and_save_steps(recipe: Recipe) -> Iterator[Problem]:
    """Axolotl refuses early stopping without both step counts (its check_early_stopping)."""
    train = recipe.train
    if train.early_stopping_patience is None:
        return
    eval_steps, save_steps = train.eval_steps, train.save_steps
    if not eval_steps or not save_steps:
        yield Problem(
            ("train", "early_stopping_patience"),
            "early stopping compares evaluations and keeps the best checkpoint: "
            "set train.eval_steps and train.save_steps too",
        )
    elif save_steps % eval_steps:
        yield Problem(
            ("train", "save_steps"),
            f"train.save_steps ({save_steps}) must be a multiple of train.eval_steps ({eval_steps}) "
            "for early stopping",
        )


# Names a version cannot take: they are folders of runs/<name>/ already.
RESERVED_VERSIONS = ("latest", "stages", "sweeps", "compare")


@rule
def version_is_a_free_folder_name(recipe: Recipe) -> Iterator[Problem]:
    import re

    version = recipe.version
    if version is None:
        return
    if version in RESERVED_VERSIONS or re.fullmatch(r"[0-9a-f]{10}", version):
        yield Problem(
            ("version",),
            f"'{version}' names a folder runs/{recipe.name}/ already uses "
            f"({', '.join(RESERVED_VERSIONS)} and 10-hex-digit run folders); choose another",
        )


@rule
def continue_from_fits_the_mode(recipe: Recipe) -> Iterator[Problem]:
    section = recipe.continue_from
    if section is None:
        return
    mode = section.mode
    if mode == "full" and recipe.lora.enabled:
        yield Problem(
            ("continue_from", "mode"),
            "mode full trains every weight of the merged parent: set lora.enabled: false "
            "(or use mode new_adapter for a fresh LoRA on it)",
        )
    if mode != "full" and not recipe.lora.enabled:
        yield Problem(
            ("continue_from", "mode"),
            f"mode {mode} trains a LoRA adapter, but lora.enabled is false (mode full trains "
            "every weight)",
        )
    if mode != "same_adapter":
        for index, _ in _targets(recipe, "lora_gguf"):
            yield Problem(
                ("export", index),
                f"continue_from.mode {mode}: the adapter applies to the merged parent, not to "
                "model.base, so a LoRA GGUF over the base would be wrong; export the merged "
                "model (`- type: merge` and `- type: gguf`)",
            )
    problem = path_problem(section.run)
    if problem:
        yield Problem(
            ("continue_from", "run"),
            f"{problem} yet: run the parent recipe first (the run refuses until it exists)",
            warning=True,
        )


@rule
def eval_keys_have_what_they_need(recipe: Recipe) -> Iterator[Problem]:
    evaluation = recipe.eval
    gate = evaluation.gate
    if gate.min_pass_rate_per_group is not None and not evaluation.group_by:
        yield Problem(
            ("eval", "gate", "min_pass_rate_per_group"),
            "pass rates per group need eval.group_by (a metadata key, e.g. meta.version)",
        )
    for key in ("max_regression", "max_loss_regression"):
        if getattr(gate, key) is not None and recipe.continue_from is None:
            yield Problem(
                ("eval", "gate", key),
                f"eval.gate.{key} compares with the parent on its test split; the recipe has no "
                "continue_from",
            )
    if evaluation.test_set is not None:
        problem = path_problem(evaluation.test_set)
        if problem:
            yield Problem(("eval", "test_set"), problem)


# Keys a sweep cannot vary: they name the run or the sweep itself.
UNSWEPT = ("recipe", "name", "extends", "version", "sweep")


def _sweep_key_problem(recipe: Recipe, key: str) -> str | None:
    from runner.recipe.load import parse_key
    from runner.recipe.schema import Recipe as RecipeModel
    from runner.recipe.walk import node_at

    path = parse_key(key)
    if not path or str(path[0]) in UNSWEPT:
        return f"'{key}' cannot be swept (a sweep varies training, data and evaluation keys)"
    if node_at(RecipeModel, path, recipe.to_dict()) is None:
        return f"'{key}' is not a key of this recipe"
    return None


@rule
def sweep_is_runnable(recipe: Recipe) -> Iterator[Problem]:
    from runner.sweep.section import METRIC_STAGES, Uniform, metric_path

    sweep = recipe.sweep
    if sweep is None:
        return
    if not sweep.params and not sweep.paired:
        yield Problem(("sweep",), "a sweep needs `params:` or `paired:` to vary")
    for key, space in sweep.params.items():
        problem = _sweep_key_problem(recipe, key)
        if problem:
            yield Problem(("sweep", "params", key), problem)
        if sweep.method == "grid" and not isinstance(space, tuple):
            yield Problem(
                ("sweep", "params", key),
                "a range has no grid: list the values, or use method random or tpe",
            )
        if isinstance(space, tuple) and not space:
            yield Problem(("sweep", "params", key), "list at least one value")
        if isinstance(space, Uniform) and space.uniform[0] > space.uniform[1]:
            yield Problem(("sweep", "params", key), "the low bound is above the high one")
    for index, choice in enumerate(sweep.paired):
        if not choice:
            yield Problem(("sweep", "paired", index), "an empty choice")
        for key in choice:
            problem = _sweep_key_problem(recipe, key)
            if problem:
                yield Problem(("sweep", "paired", index, key), problem)
            elif key in sweep.params:
                yield Problem(
                    ("sweep", "paired", index, key),
                    f"'{key}' is both in sweep.params and sweep.paired",
                )
    if sweep.method != "grid" and sweep.max_trials is None:
        yield Problem(
            ("sweep", "max_trials"), f"method {sweep.method} draws trials: set sweep.max_trials"
        )
    stage, *rest = metric_path(sweep.metric)
    if stage not in METRIC_STAGES or not rest:
        yield Problem(
            ("sweep", "metric"),
            f"'{sweep.metric}' is not a number a run reports: use eval.held_out_loss, "
            "eval.pass_rate, eval.checks.<check>, eval.seconds_per_answer, train.last_loss...",
        )
    elif stage == "eval" and not recipe.eval.enabled:
        yield Problem(("sweep", "metric"), f"'{sweep.metric}' needs eval.enabled: true")
    elif rest[0] == "checks" and len(rest) > 1:
        from runner.eval.checks import build_checks

        labels = build_checks(recipe.eval.checks, allow_commands=True).labels
        if rest[1] not in labels:
            yield Problem(
                ("sweep", "metric"),
                f"no '{rest[1]}' check in eval.checks{did_you_mean(rest[1], labels)}",
            )
    if sweep.pruning() is not None and (recipe.train.eval_steps is None or recipe.split.val <= 0):
        yield Problem(
            ("sweep", "stop_early"),
            "stopping trials early reads the validation loss Axolotl logs every "
            "train.eval_steps: set train.eval_steps and keep split.val above 0",
        )


def _extracts(recipe: Recipe, type_name: str) -> list[tuple[int, int, Any, Any]]:
    """``(source index, entry index, source, entry)`` of every `extract:` entry of a type."""
    return [
        (i, j, source, entry)
        for i, source in enumerate(recipe.sources)
        for j, entry in enumerate(getattr(source, "extract", None) or ())
        if entry.type == type_name
    ]


@rule
def teacher_extract_has_a_teacher(recipe: Recipe) -> Iterator[Problem]:
    if recipe.teacher is not None:
        return
    for i, j, _, _ in _extracts(recipe, "teacher"):
        yield Problem(
            ("sources", i, "extract", j, "type"),
            "a `type: teacher` extract needs a `teacher:` section with the endpoint "
            "(base_url, model, and api_key_env for a hosted API)",
        )


@rule
def teacher_task_fits_its_source(recipe: Recipe) -> Iterator[Problem]:
    for i, j, source, entry in _extracts(recipe, "teacher"):
        if source.type == "docs" and entry.task != "qa":
            yield Problem(
                ("sources", i, "extract", j, "task"),
                f"task {entry.task} asks about code units, and a docs source has sections: "
                "use task: qa for docs",
            )


@rule
def fill_in_middle_base_has_fim_tokens(recipe: Recipe) -> Iterator[Problem]:
    """Infill examples are written in the base tokenizer's own FIM tokens; a base without them
    is refused before any work (the data stage refuses it too)."""
    found = _extracts(recipe, "fill_in_middle")
    if not found:
        return
    from runner.prompt.fim import base_fim_problem

    problem, certain = base_fim_problem(recipe.model.base, recipe.model.revision)
    if problem:
        i, j, _, _ = found[0]
        yield Problem(
            ("sources", i, "extract", j, "type"), f"fill_in_middle: {problem}", warning=not certain
        )


@rule
def fill_in_middle_has_one_mode(recipe: Recipe) -> Iterator[Problem]:
    """The Modelfile's `{{ .Suffix }}` branch writes one order; training in two would teach the
    model a format Ollama never sends."""
    found = _extracts(recipe, "fill_in_middle")
    modes = {entry.mode for *_, entry in found}
    if len(modes) > 1:
        i, j, _, _ = found[-1]
        yield Problem(
            ("sources", i, "extract", j, "mode"),
            f"every fill_in_middle entry must use one mode (found {', '.join(sorted(modes))}): "
            "the Ollama TEMPLATE's suffix branch writes one order",
        )


@rule
def repair_commands_need_permission(recipe: Recipe) -> Iterator[Problem]:
    for i, j, _, entry in _extracts(recipe, "repair_code"):
        if entry.command and not entry.allow_command:
            yield Problem(
                ("sources", i, "extract", j, "command"),
                "repair_code runs this command on generated code only with allow_command: true "
                "on this entry (set it after reading the command); the data stage refuses "
                "until then",
                warning=True,
            )
