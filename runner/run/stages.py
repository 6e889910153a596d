"""What each stage of a run is: its code, what it reads from the recipe, which tools it calls.

A stage's cache key is built from exactly these: the whole recipe sections it reads (never
hand-picked fields), the content of the files those sections name, the versions of its tools,
and the keys of the stages it depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.recipe.model import Recipe


@dataclass(frozen=True)
class StageSpec:
    name: str
    entry: str  # "module:function"
    sections: tuple[str, ...] = ()  # whole top-level recipe sections
    exports: tuple[str, ...] = ()  # export targets of these types (whole entries)
    subsections: tuple[str, ...] = ()  # whole nested sections, dotted
    tools: tuple[str, ...] = ()  # distributions whose versions enter the key
    deps: tuple[str, ...] = ()  # upstream stages whose keys are chained in
    writes: str = ""  # what the stage leaves in its folder, for `recipe plan`
    resumable: bool = False  # keep a partial output folder between attempts
    run_files: tuple[str, ...] = ()  # files of its output also linked at the top of the run folder
    base_build: bool = False  # a built-in tiny base enters the key by its build, not its name


SPECS: dict[str, StageSpec] = {
    s.name: s
    for s in (
        StageSpec(
            "data",
            "runner.data.build:run",
            sections=("sources", "filters", "balance", "split", "prompt", "model", "on_error"),
            tools=("datasets", "transformers", "tokenizers"),
            writes="train/val/test JSONL (messages + meta), dropped rows with reasons, stats",
        ),
        StageSpec(
            "train",
            "runner.train.stage:run",
            sections=("model", "lora", "train", "compute", "axolotl", "prompt"),
            tools=("axolotl", "torch", "transformers", "peft", "accelerate", "bitsandbytes"),
            deps=("data",),
            writes="axolotl.yaml, the LoRA adapter and tokenizer, losses.jsonl, logs/train.log",
            resumable=True,
            run_files=("axolotl.yaml",),
            base_build=True,
        ),
        StageSpec(
            "merge",
            "runner.export.merge:run",
            sections=("model",),
            exports=("merge",),
            tools=("axolotl", "torch", "transformers", "peft"),
            deps=("train",),
            writes="a 16-bit merged model with the trained tokenizer and chat template",
        ),
        StageSpec(
            "gguf",
            "runner.export.gguf:run",
            exports=("gguf", "lora_gguf"),
            tools=("llama-cpp-python", "gguf"),
            deps=("train", "merge"),
            writes="GGUF files (full precision and each quantization)",
        ),
        StageSpec(
            "ollama",
            "runner.export.ollama:run",
            sections=("prompt",),
            exports=("ollama",),
            deps=("gguf",),
            writes="Modelfile with explicit TEMPLATE and stop parameters",
        ),
        StageSpec(
            "smoke",
            "runner.export.smoke:run",
            sections=("prompt",),
            subsections=("eval.smoke",),
            tools=("llama-cpp-python",),
            deps=("gguf", "data"),
            writes="smoke-test answers of each GGUF and whether they stopped",
        ),
        StageSpec(
            "eval",
            "runner.eval.stage:run",
            sections=("eval", "prompt"),
            # `ollama.from` picks which of the exported GGUFs the generation checks run on.
            exports=("gguf", "lora_gguf", "ollama"),
            tools=("llama-cpp-python",),
            deps=("data", "train", "merge", "gguf"),
            writes="base vs fine-tuned results, held-out loss, report",
        ),
        StageSpec(
            "hub",
            "runner.export.hub:run",
            sections=("name", "description", "model"),
            exports=("hub",),
            tools=("huggingface_hub",),
            deps=("train", "merge", "gguf", "ollama", "eval"),
            writes="model card and upload record",
        ),
    )
}


def _enabled_exports(recipe: Recipe, type_name: str) -> list:
    return [t for t in recipe.exports(type_name) if t.get("enabled", True)]


def enabled_stages(recipe: Recipe) -> list[str]:
    """The stages this recipe runs, in order.

    Export stages run only when listed under ``export``; a full GGUF needs the merged model, so it
    brings the merge along; the smoke test runs whenever a GGUF is produced; eval when enabled.
    """
    on = {"data", "train"}
    gguf_full = bool(recipe.exports("gguf"))
    if _enabled_exports(recipe, "merge") or (gguf_full and not recipe.exports("merge")):
        on.add("merge")
    if gguf_full or recipe.exports("lora_gguf"):
        on.update({"gguf", "smoke"})
    if recipe.exports("ollama"):
        on.add("ollama")
    if recipe.get("eval.enabled", False):
        on.add("eval")
    if recipe.exports("hub"):
        on.add("hub")
    return [name for name in SPECS if name in on]
