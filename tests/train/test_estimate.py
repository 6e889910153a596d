"""The memory, step and disk arithmetic of `recipe plan`'s estimate, against known figures."""

from __future__ import annotations

import pytest

from runner.models.shapes import PUBLISHED, model_shape, published_shape
from runner.train.estimate import (
    GIB,
    activation_memory,
    estimate,
    lora_parameters,
    named_gpu,
    parameter_memory,
    steps,
)
from tests.helpers import recipe_of

LLAMA_7B = PUBLISHED["meta-llama/Llama-2-7b"]


def test_a_7b_model_has_its_published_parameter_count():
    # Llama-2-7b-hf: 6,738,415,616 parameters (its model card and `model.num_parameters()`).
    assert LLAMA_7B.parameters() == 6_738_415_616
    # PEFT prints "trainable params: 39,976,960" for r=16 on every linear layer of Llama-2-7B.
    assert lora_parameters(LLAMA_7B, 16, "all_linear") == 39_976_960
    assert lora_parameters(LLAMA_7B, 8, ["q_proj", "v_proj"]) == 4_194_304


def test_full_fine_tune_needs_16_bytes_a_parameter():
    weights, state = parameter_memory(LLAMA_7B, "full", LLAMA_7B.parameters(), 1, "none")
    assert weights + state == 16 * LLAMA_7B.parameters()  # ~100 GiB before activations
    # ZeRO-3 over 8 GPUs splits all of it; ZeRO-2 keeps the 16-bit weights on every GPU.
    w3, s3 = parameter_memory(LLAMA_7B, "full", LLAMA_7B.parameters(), 8, "zero3")
    assert w3 + s3 == pytest.approx(2 * LLAMA_7B.parameters())
    w2, _ = parameter_memory(LLAMA_7B, "full", LLAMA_7B.parameters(), 8, "zero2")
    assert w2 == 2 * LLAMA_7B.parameters()


def test_qlora_holds_a_7b_base_in_under_4_gib():
    trainable = lora_parameters(LLAMA_7B, 16, "all_linear")
    weights, state = parameter_memory(LLAMA_7B, "qlora", trainable, 1, "none")
    assert 3.4 * GIB < weights < 3.8 * GIB  # bitsandbytes NF4: about 3.9 GB for Llama-2-7B
    assert state == 16 * trainable  # fp32 adapter gradients and AdamW moments
    lora_weights, _ = parameter_memory(LLAMA_7B, "lora", trainable, 1, "none")
    assert lora_weights == 2 * LLAMA_7B.parameters()  # 12.6 GiB in 16 bits


def test_gradient_checkpointing_keeps_one_input_per_block():
    without = activation_memory(LLAMA_7B, 1, 2048, checkpointing=False)
    with_ = activation_memory(LLAMA_7B, 1, 2048, checkpointing=True)
    assert 9 * GIB < without < 12 * GIB
    assert with_ < without / 10


@pytest.mark.parametrize(
    ("name", "gib"), [("a100-80gb", 80), ("NVIDIA H100", 80), ("24GB", 24), ("l4", 24), ("x", None)]
)
def test_named_gpus(name, gib):
    assert named_gpu(name) == (gib * GIB if gib else None)


def test_published_shapes_match_names_with_suffixes():
    assert published_shape("Qwen/Qwen2.5-Coder-7B-Instruct") is PUBLISHED["Qwen/Qwen2.5-Coder-7B"]
    assert (
        published_shape("codellama/CodeLlama-7b-Instruct-hf") is PUBLISHED["codellama/CodeLlama-7b"]
    )
    assert published_shape("Qwen/Qwen2.5-Coder-7BX") is None
    assert published_shape("someone/unknown-7b") is None


def test_estimate_says_what_does_not_fit_and_what_to_change(tmp_path):
    recipe = recipe_of(
        {
            "model": {"base": "codellama/CodeLlama-7b-Instruct-hf"},
            "train": {"batch_size": 4, "seq_len": 2048, "gradient_checkpointing": False},
            "compute": {"gpu": "24GB"},
        },
        tmp_path,
    )
    result = estimate(recipe, cuda=True)
    assert result.fits is False and result.gpu_bytes == 24 * GIB
    assert result.method == "LoRA (16-bit base)"
    assert result.trainable == 39_976_960
    advice = " | ".join(result.advice)
    assert "train.gradient_checkpointing: true" in advice
    assert "model.quantization: 4bit (QLoRA:" in advice
    # `auto` turns checkpointing on where the run would not fit without it.
    auto = recipe_of(
        {"model": {"base": "codellama/CodeLlama-7b-Instruct-hf"}, "compute": {"gpu": "80GB"}},
        tmp_path,
    )
    assert estimate(auto, cuda=True).checkpointing is False  # batch 1: fits an 80 GB card
    small = recipe_of(
        {"model": {"base": "codellama/CodeLlama-7b-Instruct-hf"}, "compute": {"gpu": "16GB"}},
        tmp_path,
    )
    assert estimate(small, cuda=True).checkpointing is True


def test_steps_from_the_data_report_or_the_sources(tmp_path):
    recipe = recipe_of(
        {"train": {"batch_size": 2, "gradient_accumulation_steps": 2, "epochs": 3}}, tmp_path
    )
    report = {"split": {"written": {"train": 101}}, "tokens": {"train": {"mean": 50.0}}}
    counted = steps(recipe, cuda=False, data_report=report)
    assert (counted.train_examples, counted.steps_per_epoch, counted.total_steps) == (101, 26, 78)
    assert counted.tokens == 5050
    from_sources = steps(recipe, cuda=False, data_report=None)
    assert from_sources.train_examples == 1  # one record, train share 0.9, rounded
    assert "before filters" in from_sources.examples_source


def test_tiny_models_are_sized_from_their_spec():
    shape = model_shape("tiny:qwen2")
    assert shape is not None and shape.vocab == 151936 and shape.tied_embeddings
