"""What each stage of a run is: its code, the recipe keys and upstream outputs it reads, the
tools it calls, and when it runs.

A stage's cache key is built from exactly what it declares here: the values of the recipe keys
it reads (whole sections or single keys, never a hand-picked list inside a section), the export
targets it reads, the content of the files those name, the versions of its tools, and the keys
of the upstream stages whose output it reads. The stage itself sees only those keys and those
folders (``runner.run.context``), so the key cannot miss something it read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


def _entry(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class StageSpec:
    name: str
    folder: str  # under the run folder
    entry: str  # "module:function" that runs it: run(recipe view, ctx) -> Outcome
    runs_when: str  # "module:function" (recipe) -> bool
    reads: tuple[str, ...] = ()  # recipe keys: whole sections ("train") or keys ("model.base")
    exports: tuple[str, ...] = ()  # export target types it reads (whole entries)
    after: tuple[str, ...] = ()  # upstream stages whose output it reads
    tools: tuple[str, ...] = ()  # distributions whose versions enter the key
    writes: str = ""  # what the stage leaves in its folder, for `recipe plan`
    resumable: bool = False  # keep a partial output folder between attempts
    run_files: tuple[str, ...] = ()  # files of its output also linked at the top of the run
    base_build: bool = False  # a built-in tiny base enters the key by its build, not its name
    preflight: str | None = None  # "module:function" (recipe view): refuse before any stage
    plan: str | None = None  # "module:function" (recipe view) -> dict shown by `recipe plan`
    lineage_files: tuple[str, ...] = ()  # outputs whose content hash lineage.json records

    def runs(self, recipe: Recipe) -> bool:
        return bool(_entry(self.runs_when)(recipe))

    def function(self) -> Callable[..., Any]:
        return _entry(self.entry)

    def hook(self, which: str) -> Callable[..., Any] | None:
        ref = getattr(self, which)
        return _entry(ref) if ref else None


# When each stage runs (small named rules, so the pipeline names no stage).
def always(recipe: Recipe) -> bool:
    return True


def merge_runs(recipe: Recipe) -> bool:
    """A `merge` export asks for it; a full `gguf` export without one brings it along."""
    merges = recipe.exports("merge")
    return any(t.enabled for t in merges) or bool(recipe.exports("gguf") and not merges)


def gguf_runs(recipe: Recipe) -> bool:
    return bool(recipe.exports("gguf") or recipe.exports("lora_gguf"))


def ollama_runs(recipe: Recipe) -> bool:
    return bool(recipe.exports("ollama"))


def eval_runs(recipe: Recipe) -> bool:
    return recipe.eval.enabled


def hub_runs(recipe: Recipe) -> bool:
    return bool(recipe.exports("hub"))


_HERE = "runner.run.stages"
DATA_READS = (
    "sources",
    "filters",
    # The teacher's model and sampling decide its answers (its prompts are in `sources`).
    "teacher",
    "balance",
    "split",
    "prompt",
    "on_error",
    # The tokenizer counts tokens and cuts code units; the report marks train.seq_len.
    "model.base",
    "model.revision",
    "model.trust_remote_code",
    "train.seq_len",
    # A test split too small for the evaluation stops the run here, before training (unless
    # the evaluation asks a fixed test set).
    "eval.enabled",
    "eval.max_prompts",
    "eval.test_set",
    # `continue_from.replay` mixes a share of the parent's training split into the data.
    "continue_from.run",
    "continue_from.replay",
)

SPECS: dict[str, StageSpec] = {
    s.name: s
    for s in (
        StageSpec(
            "data",
            "data",
            "runner.data.build:run",
            f"{_HERE}:always",
            reads=DATA_READS,
            tools=(
                "datasets",
                "transformers",
                "tokenizers",
                "tree-sitter",
                "tree-sitter-language-pack",
                "pygments",
                "detect-secrets",
            ),
            writes="train/val/test JSONL (messages + meta), dropped rows with reasons, stats",
            lineage_files=("train.jsonl", "val.jsonl", "test.jsonl"),
        ),
        StageSpec(
            "train",
            "train",
            "runner.train.stage:run",
            f"{_HERE}:always",
            reads=(
                "model",
                "lora",
                "train",
                "compute",
                "axolotl",
                "prompt",
                "split.val",
                "continue_from",
            ),
            after=("data",),
            tools=("axolotl", "torch", "transformers", "peft", "accelerate", "bitsandbytes"),
            writes="axolotl.yaml, the LoRA adapter and tokenizer, template.json, losses.jsonl",
            resumable=True,
            run_files=("axolotl.yaml",),
            base_build=True,
            preflight="runner.train.stage:preflight",
            plan="runner.train.plan:train_plan",
        ),
        StageSpec(
            "merge",
            "merged",
            "runner.export.merge:run",
            f"{_HERE}:merge_runs",
            exports=("merge",),
            after=("train",),
            tools=("axolotl", "torch", "transformers", "peft"),
            writes="a 16-bit merged model with the trained tokenizer and chat template",
        ),
        StageSpec(
            "gguf",
            "gguf",
            "runner.export.gguf:run",
            f"{_HERE}:gguf_runs",
            # name and model.license become general.name/general.license of every GGUF.
            reads=("name", "model.base", "model.revision", "model.license"),
            exports=("gguf", "lora_gguf"),
            after=("train", "merge"),
            tools=("llama-cpp-python", "gguf"),
            writes="GGUF files (full precision and each quantization)",
        ),
        StageSpec(
            "ollama",
            "ollama",
            "runner.export.ollama:run",
            f"{_HERE}:ollama_runs",
            # model.base: FROM a GGUF or Ollama base the adapter applies to.
            reads=("model.base", "prompt.system", "train.seq_len", "version"),
            exports=("ollama", "gguf", "lora_gguf"),
            after=("train", "gguf"),
            writes="Modelfile with explicit TEMPLATE and stop parameters",
        ),
        StageSpec(
            "smoke",
            "smoke",
            "runner.export.smoke:run",
            f"{_HERE}:gguf_runs",
            reads=("model.base", "eval.smoke"),
            # The Modelfile's parameters and stops are what the served GGUF is asked with.
            exports=("lora_gguf", "ollama"),
            after=("data", "train", "gguf"),
            tools=("llama-cpp-python", "transformers"),
            writes="smoke-test answers of each GGUF, by llama.cpp's runtime and its server",
        ),
        StageSpec(
            "eval",
            "eval",
            "runner.eval.stage:run",
            f"{_HERE}:eval_runs",
            reads=(
                "eval",
                "model.base",
                "model.revision",
                "train.seq_len",
                "prompt.train_on",
                # a fixed test set's prompts get the system prompt the training examples got
                "prompt.system",
                # the parent a run continues from is evaluated beside it, on its test split too
                "continue_from.run",
            ),
            # `ollama.from` picks which of the exported GGUFs the generation checks run on.
            exports=("gguf", "lora_gguf", "ollama"),
            after=("data", "train", "merge", "gguf"),
            tools=("llama-cpp-python", "transformers", "torch", "peft"),
            writes="base vs fine-tuned results, held-out loss, report",
        ),
        StageSpec(
            "hub",
            "hub",
            "runner.export.hub:run",
            f"{_HERE}:hub_runs",
            reads=(
                "description",
                "version",
                "model",
                "sources",
                "filters",
                "lora",
                "train",
                "prompt",
            ),
            exports=("hub", "ollama"),
            after=("data", "train", "merge", "gguf", "ollama", "smoke", "eval"),
            tools=("huggingface_hub",),
            writes="model card and upload record",
        ),
    )
}

STAGES = tuple(SPECS)


def enabled_stages(recipe: Recipe) -> list[str]:
    """The stages this recipe runs, in order."""
    return [name for name, spec in SPECS.items() if spec.runs(recipe)]
