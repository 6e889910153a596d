"""Cross-field rules: small named checks over a merged recipe, in the user's key names.

Each rule takes the resolved document (defaults filled, paths absolute) and yields `Problem`s.
Facts about this machine (no CUDA) are warnings here: recipes are written on laptops and trained
on GPU machines; the run itself turns them into errors when it starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runner.recipe.problems import display_path
from runner.recipe.schema import Problem
from runner.registry import did_you_mean

Doc = dict[str, Any]
RULES: list[Callable[[Doc], Iterator[Problem]]] = []

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
FULL_PRECISION = ("f16", "bf16", "f32")


def rule(fn: Callable[[Doc], Iterator[Problem]]) -> Callable[[Doc], Iterator[Problem]]:
    RULES.append(fn)
    return fn


def check_rules(document: Doc) -> list[Problem]:
    problems: list[Problem] = []
    for fn in RULES:
        problems.extend(fn(document))
    return problems


def _targets(document: Doc, type_name: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, t) for i, t in enumerate(document.get("export", [])) if t["type"] == type_name]


def cuda_available() -> bool:
    """Cheap CUDA check that does not import torch (validate must stay fast)."""
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


@rule
def split_fractions_sum_to_one(document: Doc) -> Iterator[Problem]:
    split = document["split"]
    total = split["train"] + split["val"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        yield Problem(("split",), f"split.train + split.val + split.test must be 1 (got {total:g})")


@rule
def source_paths_exist(document: Doc) -> Iterator[Problem]:
    for index, source in enumerate(document["sources"]):
        path = source.get("path")
        if source["type"] == "hf_dataset" and path and not Path(path).exists():
            continue  # a hub id; the data stage loads it when online
        if path and not Path(path).exists():
            yield Problem(("sources", index, "path"), f"{display_path(path)} does not exist")


@rule
def source_names_unique(document: Doc) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for index, source in enumerate(document["sources"]):
        name = source.get("name")
        if name is None:
            continue
        if name in seen:
            yield Problem(
                ("sources", index, "name"),
                f"source name '{name}' is already used by sources[{seen[name]}]",
            )
        seen[name] = index


@rule
def prompt_template_exists(document: Doc) -> Iterator[Problem]:
    template = document["prompt"]["template"]
    if template == "tokenizer":
        return
    if template.endswith((".jinja", ".j2")) or "/" in template:
        return  # a path: the template module reports a missing file with its own message
    known = sorted(p.stem for p in TEMPLATES_DIR.glob("*.jinja"))
    if known and template not in known:
        yield Problem(
            ("prompt", "template"),
            f"'{template}' is not a known template{did_you_mean(template, known)} "
            f"(known: {', '.join(known)}, tokenizer, or a path to a .jinja file)",
        )


@rule
def tiny_family_known(document: Doc) -> Iterator[Problem]:
    from runner.models.tiny import TINY_MODELS

    base = document["model"]["base"]
    families = tuple(TINY_MODELS)
    if base.startswith("tiny:") and base[5:] not in families:
        family = base[5:]
        yield Problem(
            ("model", "base"),
            f"'{family}' is not a built-in tiny model{did_you_mean(family, families)} "
            f"(known: {', '.join('tiny:' + f for f in families)})",
        )


@rule
def qlora_needs_lora(document: Doc) -> Iterator[Problem]:
    if document["model"]["quantization"] != "none" and not document["lora"]["enabled"]:
        yield Problem(
            ("model", "quantization"),
            f"model.quantization: {document['model']['quantization']} trains an adapter on a "
            "quantized base, so it needs lora.enabled: true",
        )


@rule
def qlora_without_cuda(document: Doc) -> Iterator[Problem]:
    if document["model"]["quantization"] == "4bit" and not cuda_available():
        fallback = (
            "it will train a 16-bit LoRA instead (model.cpu_fallback: true)"
            if document["model"]["cpu_fallback"]
            else "the run will refuse to start here (set model.cpu_fallback: true to train a 16-bit LoRA instead)"
        )
        yield Problem(
            ("model", "quantization"),
            f"4-bit QLoRA needs a CUDA GPU and none is visible on this machine; {fallback}",
            warning=True,
        )


@rule
def exports_have_what_they_need(document: Doc) -> Iterator[Problem]:
    merges = _targets(document, "merge")
    merge_on = any(t["enabled"] for _, t in merges)
    lora_on = document["lora"]["enabled"]
    for index, _ in _targets(document, "gguf"):
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
    for index, _ in _targets(document, "lora_gguf"):
        if not lora_on:
            yield Problem(
                ("export", index), "lora_gguf exports the LoRA adapter, but lora.enabled is false"
            )


@rule
def ollama_has_a_gguf(document: Doc) -> Iterator[Problem]:
    ggufs = [t for _, t in _targets(document, "gguf")]
    available = set()
    for target in ggufs:
        available.add(target["outtype"])
        available.update(target["quantize"])
    for index, target in _targets(document, "ollama"):
        source = target["from"]
        if source == "adapter":
            if not _targets(document, "lora_gguf"):
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
        num_ctx = (target.get("parameters") or {}).get("num_ctx")
        seq_len = document["train"]["seq_len"]
        if num_ctx is not None and num_ctx < seq_len:
            yield Problem(
                ("export", index, "parameters", "num_ctx"),
                f"num_ctx {num_ctx} is below train.seq_len {seq_len}: Ollama would silently "
                "truncate prompts the model was trained on",
            )


@rule
def compute_is_consistent(document: Doc) -> Iterator[Problem]:
    compute = document["compute"]
    if compute["gpus"] > 1 and compute["strategy"] == "single":
        yield Problem(
            ("compute", "strategy"),
            f"compute.gpus is {compute['gpus']}: choose compute.strategy ddp, fsdp or deepspeed",
        )
    if compute["strategy"] == "fsdp" and document["model"]["quantization"] == "8bit":
        yield Problem(
            ("compute", "strategy"), "fsdp cannot shard an 8-bit base; use ddp or deepspeed"
        )


@rule
def gate_is_measurable(document: Doc) -> Iterator[Problem]:
    evaluation = document["eval"]
    gate = evaluation.get("gate") or {}
    for key in ("min_improvement", "min_loss_improvement"):
        if key in gate and not evaluation["compare_base"]:
            yield Problem(
                ("eval", "gate", key),
                f"eval.gate.{key} compares with the base model, but eval.compare_base is false",
            )
    checks = {c["type"] for c in evaluation["checks"]}
    for name in gate.get("checks") or {}:
        if name not in checks:
            yield Problem(
                ("eval", "gate", "checks", name),
                f"no '{name}' check in eval.checks{did_you_mean(name, sorted(checks))}",
            )


@rule
def commands_need_permission(document: Doc) -> Iterator[Problem]:
    evaluation = document["eval"]
    for index, check in enumerate(evaluation["checks"]):
        if check["type"] == "command" and not evaluation["allow_commands"]:
            yield Problem(
                ("eval", "checks", index),
                "command checks run programs; they only run when eval.allow_commands is true "
                "for this recipe (set it after reading the command)",
                warning=True,
            )


@rule
def base_is_convertible(document: Doc) -> Iterator[Problem]:
    """Warn before any training time is spent when llama.cpp's pinned converter would refuse the base."""
    if not (_targets(document, "gguf") or _targets(document, "lora_gguf")):
        return
    from runner.models.convertible import check_convertible

    for message in check_convertible(document["model"]["base"]):
        yield Problem(("model", "base"), message, warning=True)


@rule
def early_stopping_needs_eval_and_save_steps(document: Doc) -> Iterator[Problem]:
    """Axolotl refuses early stopping without both step counts (its check_early_stopping)."""
    train = document["train"]
    if "early_stopping_patience" not in train:
        return
    eval_steps, save_steps = train.get("eval_steps"), train.get("save_steps")
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
