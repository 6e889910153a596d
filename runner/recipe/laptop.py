"""`--laptop`: try any recipe end to end on this CPU, in minutes.

A recipe written for a GPU names a 7B base, a 4-bit QLoRA, thousands of steps at a learning rate
for a trained model, and a gate only a real model meets. `--laptop` keeps everything about the
data, the template and the exports, and swaps in what a CPU can run: the base's family as a
built-in tiny model (random weights, the family's real tokenizer and chat template), a 16-bit
LoRA, a short sequence, and enough steps at a high learning rate for the tiny model to learn to
end its answers (the smoke test checks, on training prompts, that every GGUF puts its end token
first where a reference answer ends). The gate is dropped (a random
model cannot meet a real model's thresholds) and `command` checks are dropped unless the recipe
allows them. The changes are `--set`-style overrides listed on the terminal, and the user's own
`--set` values still win over them.
"""

from __future__ import annotations

from typing import Any

LAPTOP_ORIGIN = "--laptop"
# Enough for a tiny model to learn to stop (the quickstart's 10 epochs of 10 steps, at 0.005).
STEPS = 80
SEQ_LEN = 512

# Which tiny model stands in for a base, by words in its name, then by the recipe's template.
BY_NAME = (("qwen", "tiny:qwen2"), ("deepseek", "tiny:deepseek-coder"), ("llama", "tiny:llama"))
BY_TEMPLATE = {"deepseek-coder": "tiny:deepseek-coder", "llama2": "tiny:llama"}


def tiny_for(base: str, template: str) -> str:
    """The built-in tiny model of ``base``'s family (a tiny one stays as it is)."""
    if base.startswith("tiny:"):
        return base
    lowered = base.lower()
    for word, tiny in BY_NAME:
        if word in lowered:
            return tiny
    return BY_TEMPLATE.get(template, "tiny:qwen2")


def laptop_overrides(document: dict[str, Any]) -> dict[str, Any]:
    """Dotted key -> value for a merged (unvalidated) recipe document; keys it lacks are left to
    validation, which reports them."""
    model = document.get("model") if isinstance(document.get("model"), dict) else {}
    prompt = document.get("prompt") if isinstance(document.get("prompt"), dict) else {}
    train = document.get("train") if isinstance(document.get("train"), dict) else {}
    evaluation = document.get("eval") if isinstance(document.get("eval"), dict) else {}
    base = model.get("base")
    if not isinstance(base, str):
        return {}
    seq_len = train.get("seq_len")
    overrides: dict[str, Any] = {
        "model.base": tiny_for(base, str(prompt.get("template", "chatml"))),
        "model.quantization": "none",
        "lora.dropout": 0.0,
        # A random tiny model learns to stop only with every linear layer adapted.
        "lora.target_modules": "all_linear",
        "train.max_steps": STEPS,
        "train.learning_rate": 0.005,
        "train.lr_scheduler": "cosine",
        "train.warmup_steps": 5,
        "train.batch_size": 4,
        "train.gradient_accumulation_steps": 1,
        "train.seq_len": min(seq_len, SEQ_LEN) if isinstance(seq_len, int) else SEQ_LEN,
        "train.eval_steps": None,
        "train.save_steps": None,
        "train.early_stopping_patience": None,
        "train.gradient_checkpointing": False,
        "compute.strategy": "single",
        "compute.gpus": 1,
        "eval.gate": {},
        # A random tiny model cannot generalize to held-out prompts in 80 steps; on training
        # prompts the smoke test still shows whether every GGUF stops where training taught it.
        "eval.smoke.prompts_from": "train",
        # One wrong token sends a greedy answer past its end: the stop is tested where the
        # reference answer ends (teacher forcing), the greedy answers are recorded.
        "eval.smoke.stop_test": "reference",
        "eval.max_prompts": 5,
    }
    sweep = document.get("sweep")
    if isinstance(sweep, dict) and sweep.get("stop_early"):
        # Stopping trials early reads the validation loss logged every train.eval_steps.
        for key in ("train.eval_steps", "train.early_stopping_patience"):
            del overrides[key]
    checks = evaluation.get("checks")
    if isinstance(checks, list) and not evaluation.get("allow_commands"):
        kept = [c for c in checks if not (isinstance(c, dict) and c.get("type") == "command")]
        if len(kept) != len(checks):
            overrides["eval.checks"] = kept or [{"type": "stops"}]
    return overrides


def describe_change(key: str, before: Any, after: Any, show: Any) -> str:
    """One override in words, for the terminal."""
    if key == "eval.checks":
        return "eval.checks without its `command` checks (eval.allow_commands is false)"
    if before is None:
        return f"{key}={show(after)}"
    return f"{key}={show(after)} (was {show(before)})"
