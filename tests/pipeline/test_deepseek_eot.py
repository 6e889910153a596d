"""End to end: a DeepSeek-Coder recipe's GGUF stops on ``<|EOT|>``.

The deepseek-coder template ends each answer with ``<|EOT|>``, but the tiny DeepSeek-Coder base
(the real DeepSeek-Coder vocabulary) has ``<｜end▁of▁sentence｜>`` as its eos, and llama.cpp does
not treat ``<|EOT|>`` as an end of generation by name. The generated Axolotl config therefore
sets ``special_tokens.eos_token: <|EOT|>``; this test runs the real chain (data -> Axolotl train
-> merge -> GGUF, whose verify step fails when the end-of-turn token is not an end-of-generation
token -> smoke, which fails when an answer does not stop on an end token) and checks that the
override reaches every artefact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.pipeline.conftest import TINY_DEEPSEEK_TRAIN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deepseek-eot")]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "datasets" / "quickstart" / "instructions.jsonl"
EOT = "<|EOT|>"

RECIPE = {
    "recipe": 1,
    "name": "deepseek-eot",
    "sources": [
        {"type": "instructions", "name": "python-snippets", "path": str(DATA), "format": "alpaca"}
    ],
    "filters": [{"type": "exact_dedupe"}],
    "split": {"train": 0.8, "val": 0.1, "test": 0.1},
    "prompt": {"template": "deepseek-coder"},
    "model": {"base": "tiny:deepseek-coder"},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
    # Five epochs at 0.005: enough for the tiny model to end every smoke answer with <|EOT|>
    # (18-22 of 64 tokens, f16 and q8_0) in about 80 s on 2 CPU cores.
    "train": {"epochs": 5, **TINY_DEEPSEEK_TRAIN},
    # The adapter export too: its base GGUF must stop on <|EOT|> as the merged one does.
    "export": [
        {"type": "merge"},
        {"type": "gguf", "outtype": "f16", "quantize": ["q8_0"]},
        {"type": "lora_gguf", "outtype": "f16"},
    ],
}


@pytest.fixture(scope="module")
def deepseek_run(tmp_path_factory):
    from runner.pipeline import run_pipeline
    from runner.recipe.load import load_recipe

    root = tmp_path_factory.mktemp("deepseek-eot")
    path = root / "deepseek-eot.yaml"
    path.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    recipe = load_recipe(path, [])
    start = time.monotonic()
    result = run_pipeline(recipe, until="smoke", root=root / "runs", say=lambda m: None)
    seconds = time.monotonic() - start
    print(f"deepseek-coder pipeline to smoke: {seconds:.0f}s")
    if result.error is not None:
        raise result.error
    return result


def test_deepseek_coder_gguf_stops_on_eot(deepseek_run):
    from transformers import AutoTokenizer

    from runner.llamacpp import read_metadata

    run_dir = deepseek_run.run_dir
    cfg = yaml.safe_load((run_dir / "axolotl.yaml").read_text())
    assert cfg["special_tokens"]["eos_token"] == EOT

    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "merged"))
    assert tokenizer.eos_token == EOT
    eot_id = tokenizer.convert_tokens_to_ids(EOT)

    ggufs = sorted((run_dir / "gguf").glob("*.gguf"))
    assert len(ggufs) == 4  # f16, q8_0, the adapter and its base
    for gguf_path in [g for g in ggufs if "-lora-" not in g.name]:
        eos = read_metadata(gguf_path)["tokens"]["eos"]
        assert (eos["id"], eos["text"]) == (eot_id, EOT), gguf_path.name

    smoke = json.loads((run_dir / "smoke" / "smoke.json").read_text())
    assert smoke["require_stop"] is True
    assert set(smoke["models"]) == {"f16", "q8_0", "lora-f16"}
    assert all(m["passed"] for m in smoke["models"].values())
    answers = [a for m in smoke["models"].values() for a in m["answers"]]
    assert len(answers) >= 2 * len(smoke["prompt_ids"]) > 0
    for answer in answers:
        assert answer["finish_reason"] == "stop"
        assert answer["end_token"] == EOT
        assert answer["checks"]["stopped_on_end_token"]
