"""The recipe -> Axolotl expansion, key by key, and the checks against Axolotl's own model."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import UserError
from runner.train.check import check_axolotl_keys
from runner.train.config import PACKING_MIN_EXAMPLES, render_axolotl_config, render_notes
from runner.train.stage import refuse_unsupported
from tests.helpers import recipe_of

# The recipes here name no file but the default source, written once into this folder.
RECIPE_FOLDER = Path(__import__("tempfile").mkdtemp(prefix="test-config-"))

BASE = {
    "name": "t",
    "prompt": {"template": "chatml", "train_on": "assistant"},
    "model": {"base": "tiny:qwen2", "quantization": "none", "cpu_fallback": False},
    "lora": {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all_linear"},
    "train": {"seq_len": 256, "sample_packing": "auto", "epochs": 1},
    "split": {"val": 0.1},
    "compute": {"gpus": 1, "strategy": "single", "precision": "auto", "flash_attention": "auto"},
    "axolotl": {},
}


def recipe(**sections):
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for dotted, value in sections.items():
        section, _, key = dotted.partition("__")
        config[section] = {**config[section], key: value} if key else value
    if "split" in config and set(config["split"]) == {"val"}:
        val = config["split"]["val"]
        config["split"] = {"train": 1 - val - 0.05, "val": val, "test": 0.05}
    return recipe_of(config, RECIPE_FOLDER)


def render(r, cuda=False, **kw):
    kw.setdefault("template_source", "{{ messages }}<|im_end|>")
    kw.setdefault("end_of_turn", ["<|im_end|>"])
    return render_axolotl_config(
        r, base_model="B", dataset_dir="D", output_dir="O", cuda=cuda, **kw
    )


def test_cpu_turns_off_mixed_precision_and_triton_kernels():
    cfg = render(recipe())
    assert cfg["bf16"] is False and cfg["fp16"] is False and cfg["tf32"] is False
    assert all(cfg[f"lora_{k}_kernel"] is False for k in ("mlp", "qkv", "o", "embedding"))
    assert "attn_implementation" not in cfg


def test_cpu_loads_batches_in_the_training_process():
    cfg = render(recipe())
    assert (cfg["dataloader_num_workers"], cfg["dataloader_pin_memory"]) == (0, False)
    assert "dataloader_num_workers" not in render(recipe(), cuda=True)


@pytest.mark.parametrize(
    ("train", "rows", "expected"),
    [
        # 40 rows in batches of 4 for 10 epochs, 100 steps: 4 saves
        ({"epochs": 10, "batch_size": 4}, 40, 25),
        # long epochs: never more often than once an epoch
        ({"epochs": 8, "batch_size": 4}, 400, 200),
        # few epochs, a recipe's own save_steps, max_steps, unknown rows: Axolotl's default
        ({"epochs": 3, "batch_size": 4}, 40, None),
        ({"epochs": 10, "batch_size": 4, "save_steps": 7}, 40, 7),
        ({"epochs": 10, "batch_size": 4, "max_steps": 50}, 40, None),
        ({"epochs": 10, "batch_size": 4}, None, None),
    ],
)
def test_many_short_epochs_save_a_few_checkpoints(train, rows, expected):
    cfg = render(recipe(train={**BASE["train"], **train}), train_examples=rows)
    assert cfg.get("save_steps") == expected


def test_gpu_precision_and_attention():
    cfg = render(recipe(), cuda=True)
    assert (cfg["bf16"], cfg["fp16"], cfg["attn_implementation"]) == ("auto", False, "sdpa")
    assert "lora_mlp_kernel" not in cfg
    cfg = render(recipe(compute__precision="fp16", compute__flash_attention=True), cuda=True)
    assert (cfg["bf16"], cfg["fp16"], cfg["attn_implementation"]) == (
        False,
        True,
        "flash_attention_2",
    )


def test_template_drives_training_and_end_of_turn_is_trained():
    cfg = render(recipe())
    assert cfg["chat_template"] == "jinja"
    assert cfg["chat_template_jinja"] == "{{ messages }}<|im_end|>"
    assert cfg["eot_tokens"] == ["<|im_end|>"]
    ds = cfg["datasets"][0]
    assert (ds["type"], ds["path"], ds["field_messages"]) == (
        "chat_template",
        "D/train.jsonl",
        "messages",
    )
    assert ds["train_on_eos"] == ds["train_on_eot"] == "turn"


@pytest.mark.parametrize(
    "train_on, roles, flag",
    [
        ("assistant", ["assistant"], None),
        ("last_assistant", ["assistant"], "train"),
        ("all", ["system", "user", "assistant"], None),
    ],
)
def test_train_on(train_on, roles, flag):
    ds = render(recipe(prompt__train_on=train_on))["datasets"][0]
    assert ds["roles_to_train"] == roles
    assert ds.get("message_field_training") == flag


def test_validation_set_follows_the_data():
    assert render(recipe(), val_examples=5)["test_datasets"][0]["path"] == "D/val.jsonl"
    cfg = render(recipe(), val_examples=0)
    assert "test_datasets" not in cfg and cfg["val_set_size"] == 0.0


@pytest.mark.parametrize(
    "quant, fallback, cuda, expect",
    [
        ("4bit", False, True, {"load_in_4bit": True, "adapter": "qlora"}),
        ("4bit", True, False, {"adapter": "lora"}),
        ("8bit", False, True, {"load_in_8bit": True, "adapter": "lora"}),
        ("none", False, True, {"adapter": "lora"}),
    ],
)
def test_quantization(quant, fallback, cuda, expect):
    cfg = render(recipe(model__quantization=quant, model__cpu_fallback=fallback), cuda=cuda)
    got = {k: cfg[k] for k in ("load_in_4bit", "load_in_8bit", "adapter") if k in cfg}
    assert got == expect


def test_qlora_without_cuda_is_refused_unless_fallback():
    with pytest.raises(
        UserError, match="4bit \\(QLoRA\\) needs a CUDA GPU.*model.cpu_fallback: true"
    ):
        refuse_unsupported(recipe(model__quantization="4bit"), cuda=False)
    refuse_unsupported(recipe(model__quantization="4bit", model__cpu_fallback=True), cuda=False)
    refuse_unsupported(recipe(model__quantization="4bit"), cuda=True)
    notes = render_notes(recipe(model__quantization="4bit", model__cpu_fallback=True), cuda=False)
    assert "model.quantization 4bit: no CUDA, training a 16-bit LoRA (model.cpu_fallback)" in notes


def test_lora_targets_and_full_finetune():
    cfg = render(recipe(lora__target_modules=["q_proj", "v_proj"]))
    assert cfg["lora_target_modules"] == ["q_proj", "v_proj"] and "lora_target_linear" not in cfg
    assert "adapter" not in render(recipe(lora__enabled=False))


@pytest.mark.parametrize(
    "wanted, cuda, n, packed",
    [
        ("auto", False, 10_000, False),
        ("auto", True, PACKING_MIN_EXAMPLES - 1, False),
        ("auto", True, PACKING_MIN_EXAMPLES, True),
        (True, True, 3, True),
        (False, True, 10_000, False),
    ],
)
def test_sample_packing(wanted, cuda, n, packed):
    r = recipe(train__sample_packing=wanted)
    assert render(r, cuda=cuda, train_examples=n)["sample_packing"] is packed
    notes = render_notes(r, cuda=cuda, train_examples=n)
    assert any(note.startswith("sample packing off") for note in notes) == (
        wanted == "auto" and not packed
    )


def test_passthrough_keys_win():
    cfg = render(recipe(axolotl={"learning_rate": 0.5, "special_tokens": {"pad_token": "<pad>"}}))
    assert cfg["learning_rate"] == 0.5 and cfg["special_tokens"] == {"pad_token": "<pad>"}


def test_render_is_pure_and_stable():
    assert render(recipe()) == render(recipe())


def test_generated_config_passes_axolotl():
    assert check_axolotl_keys(render(recipe(), cuda=False)) == []


@pytest.mark.parametrize(
    "passthrough, message",
    [
        (
            {"lora_mlp_kernal": False},
            "lora_mlp_kernal: not a key Axolotl 0.19.0 knows; did you mean 'lora_mlp_kernel'?",
        ),
        (
            {"special_tokens": {"pad_tokn": "x"}},
            "special_tokens.pad_tokn: not a key Axolotl 0.19.0 knows; did you mean 'pad_token'?",
        ),
        (
            {"fsdp_config": {"ofload_params": True}},
            "fsdp_config.ofload_params: not a key Axolotl 0.19.0 knows; did you mean 'offload_params'?",
        ),
    ],
)
def test_unknown_keys_are_caught_one_by_one(passthrough, message):
    problems = check_axolotl_keys(render(recipe(axolotl=passthrough)))
    assert [p.split(" (Axolotl")[0] for p in problems] == [message]


def test_unknown_dataset_key():
    cfg = render(recipe())
    cfg["datasets"][0]["roles_to_trian"] = ["assistant"]
    assert check_axolotl_keys(cfg)[0].startswith("datasets[0].roles_to_trian: not a key")


def test_axolotl_validation_runs():
    problems = check_axolotl_keys(render(recipe(axolotl={"adapter": "qlora"})))
    assert problems and "load_in_4bit" in problems[0]


DEEPSEEK_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"


def test_an_end_of_turn_llama_cpp_does_not_stop_on_becomes_the_eos():
    # DeepSeek-Coder base: turns end with <|EOT|>, the tokenizer's eos is <｜end▁of▁sentence｜>.
    cfg = render(recipe(), end_of_turn=["<|EOT|>"], base_eos=DEEPSEEK_EOS)
    assert cfg["special_tokens"] == {"eos_token": "<|EOT|>"}
    assert cfg["eot_tokens"] == ["<|EOT|>"]
    # Unknown eos (plan time): the same decision, which the run makes again with the tokenizer.
    assert render(recipe(), end_of_turn=["<|EOT|>"])["special_tokens"] == {"eos_token": "<|EOT|>"}
    # A pad override and the eos override share the key.
    both = render(recipe(), end_of_turn=["<|EOT|>"], base_eos=DEEPSEEK_EOS, pad_token="<unk>")
    assert both["special_tokens"] == {"pad_token": "<unk>", "eos_token": "<|EOT|>"}


@pytest.mark.parametrize(
    "end, eos",
    [
        ("<|im_end|>", "<|endoftext|>"),  # Qwen2 base: llama.cpp stops on <|im_end|> by name
        ("<|EOT|>", "<|EOT|>"),  # DeepSeek-Coder instruct: already the eos
        ("</s>", "</s>"),  # Llama 2
        ("\n### End", None),  # not one special token
    ],
)
def test_the_eos_is_kept_when_llama_cpp_already_stops(end, eos):
    assert "special_tokens" not in render(recipe(), end_of_turn=[end], base_eos=eos)


def test_the_eog_names_are_llama_cpps():
    """LLAMA_CPP_EOG_TEXTS is the list in the installed llama.cpp's llama-vocab.cpp."""
    import re

    from runner.llamacpp import llama_cpp_dir
    from runner.train.labels import LLAMA_CPP_EOG_TEXTS

    source = (llama_cpp_dir() / "src" / "llama-vocab.cpp").read_text()
    block = source[source.index("special_eog_ids.clear()") :]
    block = block[: block.index("special_eog_ids.insert(t.second)")]
    names = set(re.findall(r't\.first == "([^"]+)"', block))
    assert names == LLAMA_CPP_EOG_TEXTS


def test_llama_cpp_agrees_on_the_real_vocabularies():
    """llama.cpp's own verdict (llama_vocab_is_eog) on the tiny families' vocab GGUFs."""
    from runner.llamacpp import token_info, vocab_gguf
    from runner.train.labels import eos_override

    qwen = token_info(vocab_gguf("qwen2"), ["<|im_end|>"])["<|im_end|>"]
    deepseek = token_info(vocab_gguf("deepseek-coder"), ["<|EOT|>"])["<|EOT|>"]
    assert len(qwen["ids"]) == len(deepseek["ids"]) == 1
    assert qwen["end_of_generation"] and eos_override("<|im_end|>", "<|endoftext|>") is None
    assert not deepseek["end_of_generation"]
    assert eos_override("<|EOT|>", DEEPSEEK_EOS) == "<|EOT|>"


def test_the_plan_says_why_the_eos_changes():
    from runner.train.plan import train_plan

    deepseek = train_plan(recipe(prompt={"template": "deepseek-coder", "train_on": "assistant"}))
    assert deepseek["axolotl"]["special_tokens"] == {"eos_token": "<|EOT|>"}
    assert any(n.startswith("special_tokens.eos_token: <|EOT|>") for n in deepseek["notes"])
    qwen = train_plan(recipe())
    assert "special_tokens" not in qwen["axolotl"]
    assert not any("eos_token" in n for n in qwen["notes"])


@pytest.mark.parametrize(
    ("chat", "fim", "train_types", "test_types"),
    [
        (
            (40, 5),
            {"train": 30, "val": 4},
            ["chat_template", "input_output"],
            ["chat_template", "input_output"],
        ),
        ((40, 5), {"train": 30, "val": 0}, ["chat_template", "input_output"], ["chat_template"]),
        ((0, 0), {"train": 30, "val": 4}, ["input_output"], ["input_output"]),
        ((40, 5), None, ["chat_template"], ["chat_template"]),
    ],
)
def test_infill_rows_are_an_input_output_dataset_beside_the_chat_one(
    chat, fim, train_types, test_types
):
    """Axolotl tokenizes each `datasets:` entry with its own type and concatenates them: infill
    rows (prompt segment untrained, middle and eos trained) train in the same run as the chat
    rows."""
    cfg = render(
        recipe(split={"val": 0.1}), train_examples=chat[0], val_examples=chat[1], fim_examples=fim
    )
    assert [d["type"] for d in cfg["datasets"]] == train_types
    assert [d["type"] for d in cfg["test_datasets"]] == test_types
    infill = [d for d in cfg["datasets"] if d["type"] == "input_output"]
    for entry in infill:
        assert entry == {"path": "D/train.fim.jsonl", "ds_type": "json", "type": "input_output"}
    assert check_axolotl_keys(cfg) == []
