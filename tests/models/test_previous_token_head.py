"""The previous-token head tiny:deepseek-coder is built with: layer 0's first head puts nearly all
its attention on the token before, at every position, for any token, after the bf16 round trip
the saved model takes; the other heads stay random; RoPE scaling is refused, not mis-drawn."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from runner.models.tiny import INIT_RANGE, TINY_MODELS, _previous_token_head, _rope_theta


def _model(**overrides) -> tuple[LlamaForCausalLM, LlamaConfig]:
    """tiny:deepseek-coder's own shape, with a small vocabulary."""
    settings = {
        **TINY_MODELS["deepseek-coder"].config,
        "vocab_size": 512,
        "initializer_range": INIT_RANGE,
        "attn_implementation": "eager",
    }
    config = LlamaConfig(**{**settings, **overrides})
    torch.manual_seed(0)
    return LlamaForCausalLM(config), config


def _previous_token_attention(model: LlamaForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """Attention each head of layer 0 gives the previous token, per position (heads x n-1)."""
    with torch.no_grad():
        attention = model(ids, output_attentions=True).attentions[0][0]
    n = ids.shape[1]
    return attention[:, torch.arange(1, n), torch.arange(0, n - 1)]


@pytest.mark.parametrize("theta", [10000.0, 100000.0, 1000000.0])
def test_the_head_attends_to_the_previous_token_everywhere(theta):
    model, config = _model(rope_theta=theta)
    _previous_token_head(model, config)
    model = model.to(torch.bfloat16).to(torch.float32)  # the saved model is bf16
    torch.manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (1, 3000))
    ids[0, 1000:1400] = 7  # a run of one token: position alone must decide
    share = _previous_token_attention(model, ids)
    assert share[0].min().item() > 0.999
    assert share[1:].mean().item() < 0.1  # the other heads are left random


def test_without_the_head_no_head_attends_to_the_previous_token():
    model, config = _model()
    torch.manual_seed(1)
    share = _previous_token_attention(model, torch.randint(0, config.vocab_size, (1, 500)))
    assert share.mean(dim=1).max().item() < 0.5


def test_every_embedding_row_keeps_its_norm_and_the_constant():
    model, config = _model()
    _previous_token_head(model, config)
    rows = model.get_input_embeddings().weight.detach()
    norms = rows.norm(dim=1)
    assert torch.allclose(norms, norms[0].expand_as(norms), rtol=1e-5)
    assert torch.all(rows[:, 0] == rows[0, 0])


def test_rope_scaling_is_refused():
    _, config = _model(rope_scaling={"rope_type": "linear", "factor": 4.0})
    with pytest.raises(ValueError, match="unscaled RoPE"):
        _rope_theta(config)


def test_only_deepseek_coder_has_the_head_and_its_rope_is_unscaled():
    flagged = {name for name, spec in TINY_MODELS.items() if spec.previous_token_head}
    assert flagged == {"deepseek-coder"}
    assert "rope_scaling" not in TINY_MODELS["deepseek-coder"].config
