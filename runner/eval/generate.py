"""Answers to the test prompts from a GGUF, through llama.cpp's runtime (what users deploy)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.dataset import Conversation
from runner.eval.checks import Sample


def render_prompts(template: Any, cases: Sequence[Conversation]) -> list[str]:
    """Each prompt rendered with the training template and its generation prompt.

    Both models get the very same text: the base model is asked in the fine-tune's format, so the
    comparison measures what training changed rather than two different templates.
    """
    return [template.render(case.prompt, add_generation_prompt=True) for case in cases]


def generate_samples(
    gguf: Path,
    template: Any,
    cases: Sequence[Conversation],
    *,
    max_new_tokens: int,
    n_ctx: int,
    lora: Path | None = None,
) -> list[Sample]:
    """Greedy answers of ``gguf`` (with a LoRA GGUF applied, if given) to every case, stopping
    on the template's stop strings."""
    from runner.llamacpp import generate_chat

    prompts = render_prompts(template, cases)
    generations = generate_chat(
        gguf,
        prompts,
        max_tokens=max_new_tokens,
        stop=list(template.stop),
        n_ctx=n_ctx,
        lora_path=lora,
    )
    return [
        Sample(
            id=case.id,
            messages=case.prompt,
            reference=case.reference,
            answer=gen.text,
            finish_reason=gen.finish_reason,
            meta=case.meta,
            seconds=gen.seconds,
            tokens=gen.completion_tokens,
        )
        for case, gen in zip(cases, generations, strict=True)
    ]
