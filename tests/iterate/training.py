"""A tiny recipe the slow iterate tests really train (Axolotl on CPU): 20 instruction rows,
split 12/4/4, one batch of all 12 training rows per step (so each logged loss is the loss on the
whole training split), a fixed test set, and a merge for the evaluation to generate from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.iterate.conftest import write_instructions


def tiny_recipe(folder: Path, **changes: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data.jsonl").exists():
        write_instructions(folder / "data.jsonl", "py", 20)
        cases = [{"instruction": f"py question {i}: add {i} to x"} for i in (20, 21)]
        (folder / "test_set.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    recipe: dict[str, Any] = {
        "recipe": 1,
        "name": "tiny-meton",
        "version": "v1",
        "sources": [{"type": "instructions", "path": "data.jsonl"}],
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "decontaminate": False},
        "prompt": {"template": "chatml", "system": "You are a helpful Python assistant."},
        "model": {"base": "tiny:qwen2"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_steps": 6,
            "learning_rate": 0.01,
            "batch_size": 12,
            "seq_len": 128,
            "sample_packing": False,
        },
        "export": [{"type": "merge"}],
        "eval": {
            "test_set": "test_set.jsonl",
            "max_prompts": 2,
            "max_new_tokens": 8,
            "checks": [{"type": "stops"}],
        },
    }
    for key, value in changes.items():
        node = recipe
        *parents, last = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    name = changes.get("version", "v1")
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path
