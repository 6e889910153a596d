"""Held-out loss and perplexity, with the template and loss masking that training used.

Each test conversation is rendered with the recipe's template; the tokens that carry loss are
those inside the assistant turns ``prompt.train_on`` selects (each turn from the end of the
generation prompt through its end-of-turn token, as Axolotl's chat_template strategy trains them).
The loss is the mean negative log-likelihood over those tokens, pooled across the split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.dataset import Conversation


class MaskingError(ValueError):
    """A conversation whose rendering cannot be split into turns (kept, reported, skipped)."""


@dataclass
class Encoded:
    id: str
    input_ids: list[int]
    labels: list[bool]  # True where the token carries loss


@dataclass
class LossResult:
    loss: float | None
    perplexity: float | None
    tokens: int
    examples: int
    per_example: dict[str, float] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def loss_spans(
    render: Callable[[list[dict[str, str]], bool], str],
    messages: list[dict[str, str]],
    train_on: str,
    end_of_turn: str = "",
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans that carry loss.

    Mirrors Axolotl's ``chat_template`` strategy as the train stage configures it
    (``roles_to_train`` + ``train_on_eos: turn``): a trained turn's content, then the first
    ``end_of_turn`` after it; the template's glue (``<|im_start|>assistant\n``) carries no loss.
    ``render(messages, add_generation_prompt)`` is the template.
    """
    full = render(messages, False)
    roles = ("system", "user", "assistant") if train_on == "all" else ("assistant",)
    turns = [i for i, m in enumerate(messages) if m["role"] in roles]
    if train_on == "last_assistant":
        turns = turns[-1:]
    spans = []
    for i in turns:
        gen = messages[i]["role"] == "assistant"
        before = render(messages[:i], gen) if i or gen else ""
        through = render(messages[: i + 1], False)
        if not full.startswith(before) or not full.startswith(through):
            raise MaskingError(f"the template does not render turn {i} as a prefix of the whole")
        start, stop = len(before), len(through)
        content = messages[i]["content"]
        at = full.find(content, start, stop) if content else -1
        if at < 0 and content.strip():
            content = content.strip()  # templates that trim contents (llama2)
            at = full.find(content, start, stop)
        if at >= 0:
            start = at
            eot = full.find(end_of_turn, at + len(content), stop) if end_of_turn else -1
            stop = eot + len(end_of_turn) if eot >= 0 else at + len(content)
        spans.append((start, stop))
    return full, spans


def encode(
    tokenizer: Any, template: Any, case: Conversation, train_on: str, seq_len: int
) -> Encoded:
    """Token ids and loss mask of one conversation, cut at ``seq_len`` like training."""
    text, spans = loss_spans(template.render, case.messages, train_on, template.end_of_turn)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [any(lo <= start < hi for lo, hi in spans) for start, _ in enc["offset_mapping"]]
    return Encoded(case.id, list(enc["input_ids"])[:seq_len], labels[:seq_len])


def encode_all(
    tokenizer: Any, template: Any, cases: Sequence[Conversation], train_on: str, seq_len: int
) -> tuple[list[Encoded], list[dict[str, str]]]:
    encoded, skipped = [], []
    for case in cases:
        try:
            item = encode(tokenizer, template, case, train_on, seq_len)
        except MaskingError as exc:
            skipped.append({"id": case.id, "reason": str(exc)})
            continue
        # The first token is never predicted, so it cannot carry loss.
        if not any(item.labels[1:]):
            skipped.append({"id": case.id, "reason": f"no trained token within seq_len {seq_len}"})
            continue
        encoded.append(item)
    return encoded, skipped


def heldout_loss(
    model: Any, encoded: Sequence[Encoded], progress: Callable | None = None
) -> LossResult:
    """Pooled mean NLL over the labelled tokens of ``encoded``, one conversation at a time."""
    import torch

    device = next(model.parameters()).device
    total, count, per_example = 0.0, 0, {}
    model.eval()
    with torch.no_grad():
        for item in encoded:
            ids = torch.tensor([item.input_ids], device=device)
            logits = model(input_ids=ids).logits[0, :-1].float()
            targets = ids[0, 1:]
            mask = torch.tensor(item.labels[1:], device=device)
            nll = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
            n = int(mask.sum())
            total += float(nll)
            count += n
            per_example[item.id] = float(nll) / n
            if progress is not None:
                progress()
    if count == 0:
        return LossResult(None, None, 0, 0)
    loss = total / count
    return LossResult(loss, math.exp(min(loss, 700)), count, len(per_example), per_example)


def load_model(model_dir: Path, adapter_dir: Path | None = None) -> Any:
    """A causal LM in float32 on the best device here; with ``adapter_dir``, base + LoRA (peft)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    return model.to(device)
