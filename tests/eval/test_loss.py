"""Held-out loss: the training template's masking, and the numbers against transformers' own."""

from __future__ import annotations

import math

import pytest

from runner.dataset import Conversation
from runner.eval.loss import encode, encode_all, heldout_loss, load_model, loss_spans
from tests.eval.conftest import ROWS

pytestmark = pytest.mark.xdist_group("eval-tiny-qwen2")

CONVERSATION = Conversation(
    "c",
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Add?"},
        {"role": "assistant", "content": "def add(a, b):\n    return a + b"},
        {"role": "user", "content": "More"},
        {"role": "assistant", "content": "ok"},
    ],
)


@pytest.fixture(scope="module")
def chatml(tiny_base):
    from transformers import AutoTokenizer

    from runner.prompt.template import load_template

    return AutoTokenizer.from_pretrained(str(tiny_base)), load_template("chatml", tiny_base)


@pytest.mark.parametrize(
    ("train_on", "trained"),
    [
        ("assistant", "def add(a, b):\n    return a + b<|im_end|>ok<|im_end|>"),
        ("last_assistant", "ok<|im_end|>"),
        (
            "all",
            "Be brief.<|im_end|>Add?<|im_end|>def add(a, b):\n    return a + b<|im_end|>More<|im_end|>ok<|im_end|>",
        ),
    ],
)
def test_masking_trains_turn_contents_and_their_end_of_turn(chatml, train_on, trained):
    """As Axolotl's chat_template with train_on_eos: turn: content + <|im_end|>, never the glue."""
    tokenizer, template = chatml
    item = encode(tokenizer, template, CONVERSATION, train_on, 256)
    assert (
        tokenizer.decode([t for t, keep in zip(item.input_ids, item.labels, strict=True) if keep])
        == trained
    )


def test_conversation_cut_at_seq_len_is_reported_not_dropped_silently(chatml):
    tokenizer, template = chatml
    encoded, skipped = encode_all(tokenizer, template, [CONVERSATION], "last_assistant", 12)
    assert encoded == [] and skipped == [
        {"id": "c", "reason": "no trained token within seq_len 12"}
    ]


def test_template_that_rewrites_earlier_turns_is_skipped_with_a_reason():
    def render(messages, gen):  # numbers turns from the end: no prefix property
        return "".join(f"{len(messages) - i}:{m['content']}|" for i, m in enumerate(messages))

    with pytest.raises(ValueError, match="does not render turn 1 as a prefix"):
        loss_spans(
            render,
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "assistant",
        )


@pytest.mark.slow
def test_loss_matches_transformers_and_the_fitted_adapter_wins(tiny_base, fitted_adapter, chatml):
    import torch

    tokenizer, template = chatml
    cases = [Conversation(r["id"], r["messages"], r["meta"]) for r in ROWS]
    encoded, skipped = encode_all(tokenizer, template, cases, "assistant", 256)
    assert skipped == [] and len(encoded) == 4
    base = load_model(tiny_base)
    result = heldout_loss(base, encoded)
    # transformers' own loss, token-weighted across examples, must agree.
    total = count = 0
    with torch.no_grad():
        for item in encoded:
            ids = torch.tensor([item.input_ids])
            labels = torch.where(torch.tensor([item.labels]), ids, torch.full_like(ids, -100))
            n = sum(item.labels[1:])
            total += float(base(input_ids=ids, labels=labels).loss) * n
            count += n
    assert result.tokens == count
    assert result.loss == pytest.approx(total / count, rel=1e-4)
    assert result.perplexity == pytest.approx(math.exp(result.loss))
    tuned = heldout_loss(load_model(tiny_base, fitted_adapter), encoded)
    assert tuned.loss < result.loss - 1.0, (tuned.loss, result.loss)
