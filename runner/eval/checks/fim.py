"""`fim`: does the model fill the middle? Held-out infill rows (``test.fim.jsonl``) are sent in
the trained FIM format to the base and the fine-tuned GGUF; the check passes on an exact match
of the middle (trailing whitespace aside) and reports the similarity of every answer.

It judges only infill samples, and the other checks only chat samples (``Check.applies``): an
infill answer is a piece of code, not a turn that ends a conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from runner.eval.checks import CHECKS, Check, CheckResult, Sample
from runner.eval.checks.text import similarity
from runner.recipe.fields import Operation


def is_infill(sample: Sample) -> bool:
    return sample.meta.get("format") == "fim"


@CHECKS.register
class FimCheck(Check):
    """Passes when the generated middle equals the held-out one; the reason gives their
    similarity."""

    type_name = "fim"

    class Options(Operation):
        """Fill-in-the-middle on held-out infill examples: exact match and similarity of the
        middle, base vs fine-tuned."""

        type: Literal["fim"]
        max_examples: int = Field(20, ge=1)
        """Held-out infill rows each model answers."""

    def applies(self, sample: Sample) -> bool:
        return is_infill(sample)

    def __call__(self, sample: Sample) -> CheckResult:
        expected, got = sample.reference.rstrip(), sample.answer.rstrip()
        score = similarity(got, expected)
        if got == expected:
            return CheckResult(True, "the middle matches exactly")
        return CheckResult(False, f"the middle differs (similarity {score:.2f})")


def fim_summary(samples: Sequence[Sample]) -> dict[str, Any] | None:
    """Exact-match rate and mean similarity of a model's infill answers (None without any)."""
    infill = [s for s in samples if is_infill(s)]
    if not infill:
        return None
    exact = sum(s.answer.rstrip() == s.reference.rstrip() for s in infill)
    scores = [similarity(s.answer.rstrip(), s.reference.rstrip()) for s in infill]
    return {
        "examples": len(infill),
        "exact": exact / len(infill),
        "similarity": sum(scores) / len(scores),
        "stopped": sum(s.finish_reason == "stop" for s in infill) / len(infill),
    }


def infill_samples(
    gguf: Path,
    cases: Sequence[Any],
    tokenizer: Any,
    *,
    max_new_tokens: int,
    lora: Path | None = None,
) -> list[Sample]:
    """Greedy middles of ``gguf`` for held-out infill rows, prompted as in training."""
    from runner.llamacpp import generate_chat
    from runner.prompt.fim import training_prefix

    bos = training_prefix(tokenizer)
    prompts = [bos + case.prompt[-1]["content"] for case in cases]
    longest = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    generations = generate_chat(
        gguf,
        prompts,
        max_tokens=max_new_tokens,
        n_ctx=longest + max_new_tokens + 16,
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
        )
        for case, gen in zip(cases, generations, strict=True)
    ]
