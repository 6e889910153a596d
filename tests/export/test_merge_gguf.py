"""Merge and GGUF stages on a real LoRA over tiny:qwen2: real Axolotl, real llama.cpp converter."""

from __future__ import annotations

import json
import shutil

import pytest

from runner import llamacpp
from runner.export.gguf import gguf_path, verify_gguf
from runner.export.merge import check_merged
from runner.prompt.template import load_template

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("export-tiny-qwen2")]


def test_merged_model_is_16_bit_with_the_trained_tokenizer(exported_run):
    run_dir, _, summaries = exported_run
    merged = run_dir / "merged"
    summary = summaries["merge"]
    assert summary["weight_dtypes"] == {"F16": summary["weight_dtypes"]["F16"]}
    assert check_merged(merged) == []
    assert "quantization_config" not in json.loads((merged / "config.json").read_text())
    # merge-lora copied the base's Qwen2.5 template; the stage put the trained ChatML back.
    trained = (run_dir / "train" / "chat_template.jinja").read_text()
    assert (merged / "chat_template.jinja").read_text() == trained
    assert trained == load_template("chatml").source
    assert "chat_template.jinja" in summary["tokenizer_files_from_training"]


def test_check_merged_rejects_a_quantization_config(exported_run, tmp_path):
    run_dir, _, _ = exported_run
    copy = tmp_path / "merged"
    shutil.copytree(run_dir / "merged", copy)
    config = json.loads((copy / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (copy / "config.json").write_text(json.dumps(config))
    [problem] = check_merged(copy)
    assert "still has a quantization_config (bitsandbytes)" in problem


def test_check_merged_rejects_integer_weights(tmp_path):
    import torch
    from safetensors.torch import save_file

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    save_file(
        {"a.weight": torch.zeros(4, 4, dtype=torch.int8), "b.weight": torch.zeros(4)},
        str(tmp_path / "model.safetensors"),
    )
    [problem] = check_merged(tmp_path)
    assert problem == "merged weights are not all floating point: 1 I8 tensors"


def test_gguf_files_for_every_type(exported_run):
    run_dir, recipe, summaries = exported_run
    files = summaries["gguf"]["files"]
    assert set(files) == {"f16", "q8_0", "q4_k_m", "lora-f16", "base-f16"}
    for kind, entry in files.items():
        path = gguf_path(recipe, run_dir / "gguf", kind)
        assert path.name == f"tiny-export-{kind}.gguf"
        assert path.stat().st_size == entry["bytes"] > 0
    assert files["q4_k_m"]["bytes"] < files["q8_0"]["bytes"] < files["f16"]["bytes"]


def test_gguf_metadata_read_back(exported_run):
    run_dir, recipe, summaries = exported_run
    trained = (run_dir / "merged" / "chat_template.jinja").read_text()
    # Read one file back here; the stage read back every file and reported what it found.
    meta = llamacpp.read_metadata(gguf_path(recipe, run_dir / "gguf", "q4_k_m"))
    assert meta["architecture"] == "qwen2"
    assert meta["chat_template"] == trained
    assert meta["tokenizer_pre"] == "qwen2"
    assert meta["file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    expected_types = {"f16": "F16", "q8_0": "Q8_0", "q4_k_m": "Q4_K"}
    # The model's context length and the recipe's name, version and license, in every file.
    assert meta["context_length"] == 4096
    assert (meta["name"], meta["version"], meta["license"]) == ("tiny-export", "v1", "apache-2.0")
    for kind, tensor_type in expected_types.items():
        check = summaries["gguf"]["checks"][kind]
        assert check["context_length"] == 4096
        assert check["general"] == {"name": "tiny-export", "version": "v1", "license": "apache-2.0"}
        # Qwen2's GGUF adds no BOS, and its chat template writes none: as in training.
        assert check["runtime_adds_bos"] is False
        assert check["chat_template_matches"] is True
        assert check["tokens"]["eos"] == {"id": 151643, "text": "<|endoftext|>"}
        assert tensor_type in check["tensor_types"]
        # eos is <|endoftext|>, yet llama.cpp stops at ChatML's <|im_end|>: checked, not assumed.
        assert check["end_of_turn"] == {
            "text": "<|im_end|>",
            "ids": [151645],
            "end_of_generation": True,
        }


def test_lora_gguf_is_an_adapter(exported_run):
    run_dir, recipe, _ = exported_run
    meta = llamacpp.read_metadata(gguf_path(recipe, run_dir / "gguf", "lora-f16"))
    assert meta["adapter_type"] == "lora"
    assert meta["architecture"] == "qwen2"


def test_a_template_other_than_the_trained_one_fails(exported_run, tmp_path):
    run_dir, recipe, _ = exported_run
    other = tmp_path / "model"
    other.mkdir()
    for name in ("tokenizer_config.json", "tokenizer.json"):
        shutil.copy(run_dir / "merged" / name, other / name)
    (other / "chat_template.jinja").write_text(load_template("zephyr").source)
    _, problems = verify_gguf(gguf_path(recipe, run_dir / "gguf", "q8_0"), other, "<|im_end|>")
    assert len(problems) == 1
    assert "tokenizer.chat_template differs from the trained one" in problems[0]
    assert "line 1:" in problems[0]


def test_a_gguf_without_template_or_with_a_wrong_eos_fails(exported_run, tmp_path):
    """A GGUF written without tokenizer.chat_template and with eos on the wrong token."""
    import gguf

    run_dir, _, _ = exported_run
    path = tmp_path / "bare.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b", "<|im_end|>"])
    writer.add_eos_token_id(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    _, problems = verify_gguf(path, run_dir / "merged", None)
    assert any("has no tokenizer.chat_template" in p for p in problems)
    # Three tokens and no merges: llama.cpp refuses the vocabulary, which is said, not raised.
    assert (
        "llama.cpp cannot load bare.gguf's vocabulary: error loading model vocabulary: "
        "cannot find tokenizer merges in model file" in problems
    )
    assert any(
        "end-of-sequence token is '<|im_end|>' (id 2), but the trained tokenizer's eos_token "
        "is '<|endoftext|>'" in p
        for p in problems
    )


def test_end_of_turn_that_llama_cpp_does_not_stop_at_fails(tmp_path):
    """tiny:deepseek-coder: the template ends answers with <|EOT|>, eos is end-of-sentence, and
    llama.cpp does not treat <|EOT|> as end of generation: the model would never stop."""
    from runner.models import resolve_base

    base = resolve_base("tiny:deepseek-coder")
    out = llamacpp.convert_model(base, tmp_path / "ds-f16.gguf", "f16")
    _, problems = verify_gguf(out, base, "<|EOT|>")
    assert len(problems) == 1
    assert "will not stop generating at the template's end-of-turn '<|EOT|>'" in problems[0]


def _write_gguf(path, template, context_length):
    import gguf

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a"])
    writer.add_token_merges(["a a"])  # llama.cpp loads no BPE vocabulary without merges
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)
    if context_length:
        writer.add_context_length(context_length)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_whose_bos_or_context_differs_from_training_fails(exported_run, tmp_path):
    """Qwen2's GGUF names <|endoftext|> as BOS, its tokenizer has none: a template writing a
    bare {{ bos_token }} renders differently in llama.cpp than in training. A file without a
    context length, or another name than the recipe's, fails too."""
    run_dir, _, _ = exported_run
    model = tmp_path / "model"
    model.mkdir()
    for name in ("tokenizer_config.json", "tokenizer.json", "config.json"):
        shutil.copy(run_dir / "merged" / name, model / name)
    bare = "{{ bos_token }}" + load_template("chatml").source
    (model / "chat_template.jinja").write_text(bare)
    path = tmp_path / "bare-bos.gguf"
    _write_gguf(path, bare, None)
    _, problems = verify_gguf(path, model, None, {"general.name": "tiny-export"})
    assert any("declares no context length" in p for p in problems)
    assert any("general.name is None, the recipe's 'tiny-export'" in p for p in problems)
    assert any(
        "llama.cpp renders bare-bos.gguf's chat template with its BOS/EOS "
        "('<|endoftext|>'/'<|endoftext|>') as '<|endoftext|><|im_start|>user" in p
        for p in problems
    )
    # The shipped ChatML template writes a BOS only when it is not also the EOS.
    shipped = load_template("chatml").source
    (model / "chat_template.jinja").write_text(shipped)
    _write_gguf(path, shipped, 4096)
    _, problems = verify_gguf(path, model, None)
    assert problems == []
