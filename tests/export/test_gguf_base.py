"""Fine-tune the model you already run: a tiny GGUF (q8_0, and a K-quant) as `model.base`.

The tiny Qwen2 model is converted and quantized by llama.cpp as a user's GGUF would be; the
runner dequantizes it with transformers' GGUF loader, a real LoRA is fitted on that, and the
export stages write a LoRA GGUF with a Modelfile FROM the very same file (or the Ollama model it
was pulled as) + ADAPTER; the smoke test loads the original GGUF with the adapter in llama.cpp
and compares it with the original alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from runner.export import gguf, ollama, smoke
from runner.models import resolve_base
from runner.models.shapes import model_shape
from runner.prompt.template import load_template, save_template
from tests.export.conftest import (
    HELD_OUT_PROMPTS,
    TRAIN_PROMPTS,
    conversation,
    fit_adapter,
)
from tests.helpers import recipe_of
from tests.models.test_ollama_store import pull

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gguf-base")]


@pytest.fixture(scope="module")
def user_ggufs(tiny_qwen2: Path, tmp_path_factory) -> dict[str, Path]:
    """The GGUFs a llama.cpp user has: f16 from the converter, then q8_0 and q4_k_m."""
    from runner import llamacpp

    folder = tmp_path_factory.mktemp("user-models")
    f16 = llamacpp.convert_model(tiny_qwen2, folder / "tiny-qwen2.F16.gguf", "f16")
    return {
        "q8_0": llamacpp.quantize(f16, folder / "tiny-qwen2.Q8_0.gguf", "q8_0"),
        "q4_k_m": llamacpp.quantize(f16, folder / "tiny-qwen2.Q4_K_M.gguf", "q4_k_m"),
    }


# Largest error relative to the tensor's largest weight: about 1/127 of a block's scale for
# 8-bit blocks, 1/15 for 4-bit ones; a wrong tensor mapping is off by about 1.
@pytest.mark.parametrize(("kind", "tolerance"), [("q8_0", 0.01), ("q4_k_m", 0.1)])
def test_a_gguf_dequantizes_to_the_model_it_was_made_from(user_ggufs, tiny_qwen2, kind, tolerance):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_base(str(user_ggufs[kind]))
    assert resolve_base(str(user_ggufs[kind])) == folder  # cached, not rebuilt
    source = json.loads((folder / "gguf_source.json").read_text())
    assert source["sha256"] == hashlib.sha256(user_ggufs[kind].read_bytes()).hexdigest()
    config = json.loads((folder / "config.json").read_text())
    # The shape recipe plan estimates with, read from the GGUF's header, is the model's.
    shape = model_shape(str(user_ggufs[kind]))
    assert shape is not None and shape.source == "GGUF header"
    assert (shape.hidden, shape.intermediate, shape.layers, shape.vocab) == (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_hidden_layers"],
        config["vocab_size"],
    )
    assert shape.tied_embeddings is True  # tiny:qwen2 ties them; the GGUF has no output.weight
    assert config["model_type"] == "qwen2"
    assert config.get("dtype", config.get("torch_dtype")) == "float16"

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    original = AutoTokenizer.from_pretrained(str(tiny_qwen2))
    text = "def add(a, b):\n    return a + b  # <|im_end|>"
    assert tokenizer(text)["input_ids"] == original(text)["input_ids"]
    assert tokenizer.chat_template == original.chat_template

    weights = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).state_dict()
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2), dtype=torch.float32)
    for name, tensor in reference.state_dict().items():
        # lm_head: tied to the embeddings as in tiny:qwen2 (the GGUF has no output.weight).
        if name.endswith(("mlp.down_proj.weight", "q_proj.weight", "lm_head.weight")):
            error = ((weights[name] - tensor).abs().max() / tensor.abs().max()).item()
            assert error < tolerance, (name, error)


def run_folder(base_dir: Path, tmp: Path) -> Path:
    """``data/`` and ``train/`` as the earlier stages leave them, with a LoRA fitted on the
    dequantized base."""
    run_dir = tmp / "run"
    train = run_dir / "train"
    train.mkdir(parents=True)
    fit_adapter(base_dir, train)
    save_template(load_template("chatml", tokenizer_dir=train), train)
    data = run_dir / "data"
    data.mkdir()
    for name, prompts in (("train", TRAIN_PROMPTS), ("test", HELD_OUT_PROMPTS)):
        rows = [{"id": f"{name}-{i}", "messages": conversation(p)} for i, p in enumerate(prompts)]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def gguf_base_recipe(base: str, folder: Path):
    return recipe_of(
        {
            "name": "tiny-gguf-base",
            "model": {"base": base},
            "prompt": {"template": "chatml", "train_on": "assistant"},
            "export": [
                {"type": "lora_gguf", "outtype": "f16"},
                {"type": "ollama", "model": "tiny-tuned:v1", "from": "adapter", "create": "never"},
            ],
            "eval": {"smoke": {"prompts": 3, "max_new_tokens": 24, "require_stop": True}},
        },
        folder,
    )


def test_the_adapter_is_exported_for_the_gguf_the_user_runs(
    user_ggufs, tmp_path, monkeypatch, stage_runner
):
    q8 = user_ggufs["q8_0"]
    base_dir = resolve_base(str(q8))
    run_dir = run_folder(base_dir, tmp_path)
    recipe = gguf_base_recipe(str(q8), tmp_path / "recipe")

    files = stage_runner(gguf, recipe, run_dir, "gguf")["files"]
    assert set(files) == {"lora-f16"}  # the base is the user's GGUF: nothing is converted
    stage_runner(ollama, recipe, run_dir, "ollama")
    modelfile = (run_dir / "ollama" / "Modelfile").read_text()
    lines = modelfile.splitlines()
    assert f"FROM {q8}" in lines or any(
        line.startswith("FROM ") and line.endswith("/tiny-qwen2.Q8_0.gguf") for line in lines
    )
    assert "ADAPTER ../gguf/tiny-gguf-base-lora-f16.gguf" in lines

    summary = stage_runner(smoke, recipe, run_dir, "smoke")
    assert summary["passed"] is True, summary
    result = summary["models"]["lora-f16"]
    assert result["adapter_differs"] is True and result["stopped"] == 3
    report = json.loads((run_dir / "smoke" / "smoke.json").read_text())
    assert report["files"]["lora-f16"]["model"] == str(q8)  # the original quantized file
    for answer in report["models"]["lora-f16"]["answers"]:
        assert answer["end_token"] == "<|im_end|>"
        assert answer["prompt_tokens"] == answer["hf_prompt_tokens"]

    # The same file pulled into an Ollama store: same digest, same dequantized folder, and
    # the Modelfile builds on the model by its name.
    store = tmp_path / "ollama-store"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    pull(store, "ollama:tiny-qwen2:q8", q8.read_bytes(), template="{{ .Prompt }}")
    pulled = gguf_base_recipe("ollama:tiny-qwen2:q8", tmp_path / "recipe2")
    assert resolve_base(pulled.model.base) == base_dir
    for stage in ("gguf", "ollama", "smoke"):
        shutil.rmtree(run_dir / stage)
    stage_runner(gguf, pulled, run_dir, "gguf")
    stage_runner(ollama, pulled, run_dir, "ollama")
    lines = (run_dir / "ollama" / "Modelfile").read_text().splitlines()
    assert "FROM tiny-qwen2:q8" in lines
    assert "ADAPTER ../gguf/tiny-gguf-base-lora-f16.gguf" in lines
    summary = stage_runner(smoke, pulled, run_dir, "smoke")
    assert summary["passed"] is True, summary
    report = json.loads((run_dir / "smoke" / "smoke.json").read_text())
    blob = store / "blobs" / f"sha256-{hashlib.sha256(q8.read_bytes()).hexdigest()}"
    assert report["files"]["lora-f16"]["model"] == str(blob)
    assert report["models"]["lora-f16"]["adapter_differs"] is True
