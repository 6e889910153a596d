"""A tiny Qwen2 base (real tokenizer, random weights) and a LoRA adapter fitted to a few Python
answers, built once per test session: the real inputs the eval stage measures."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

# Test conversations in the canonical data-stage format. The adapter is fitted on them, so its
# held-out loss on them must come out below the base model's.
ROWS = [
    {
        "id": f"t{i}",
        "messages": [
            {"role": "system", "content": "You are a helpful Python coding assistant."},
            {"role": "user", "content": f"Write a function that returns {i} plus x."},
            {
                "role": "assistant",
                "content": f"```python\ndef plus_{i}(x):\n    return x + {i}\n```",
            },
        ],
        "meta": {"language": "python"},
    }
    for i in range(4)
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    from runner.models import resolve_base

    return resolve_base("tiny:qwen2")


@pytest.fixture(scope="session")
def fitted_adapter(tiny_base: Path) -> Path:
    """A LoRA adapter (peft) trained for a few steps on ROWS with the eval's own masking.

    Built once into the runner's cache under a file lock: test workers share it even when
    pytest-xdist spreads these tests over several workers.
    """
    from runner.hashing import content_hash
    from runner.models.cache import build_once
    from runner.versions import version_of

    key = content_hash(
        {
            "base": tiny_base.name,
            "rows": ROWS,
            "fit": FIT,
            "versions": {p: version_of(p) for p in ("torch", "transformers", "peft")},
        }
    )
    return build_once("test-adapters", "eval-fitted", key, functools.partial(_fit, tiny_base))


FIT = {"r": 8, "alpha": 16, "lr": 1e-2, "epochs": 12, "seed": 0}


def _fit(tiny_base: Path, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runner.dataset import Conversation
    from runner.eval.loss import encode_all
    from runner.prompt.template import load_template

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    template = load_template("chatml", tiny_base)
    cases = [Conversation(r["id"], r["messages"], r["meta"]) for r in ROWS]
    encoded, _ = encode_all(tokenizer, template, cases, "assistant", 256)
    torch.manual_seed(FIT["seed"])
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32)
    config = LoraConfig(
        r=FIT["r"],
        lora_alpha=FIT["alpha"],
        target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=FIT["lr"])
    history = []
    for _ in range(FIT["epochs"]):
        for item in encoded:
            ids = torch.tensor([item.input_ids])
            labels = torch.where(torch.tensor([item.labels]), ids, torch.full_like(ids, -100))
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            history.append({"step": len(history) + 1, "loss": round(loss.item(), 4)})
    # The shape of HF Trainer's checkpoint state, with this fit's real losses.
    state = {"global_step": len(history), "log_history": history}
    (out / "trainer_state.json").write_text(json.dumps(state))
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
