"""A run folder as the data and train stages leave it, on the tiny Qwen2 model, built once.

The adapter is a real peft LoRA fitted for a few dozen steps to answer in ChatML and end its
answer with ``<|im_end|>``, so that the export stages (merge, GGUF, smoke) work on the same
kind of artifacts as in a real run: a trained adapter, the trained tokenizer with its chat
template, an Axolotl config and held-out conversations.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runner.prompt.template import load_template, save_template
from runner.run.stages import SPECS
from tests import helpers
from tests.helpers import recipe_of, stage_context

TRAIN_PROMPTS = [
    "Write a function that adds two numbers.",
    "Reverse a string in Python.",
    "How do I read a file line by line?",
    "Sort a list of tuples by the second item.",
    "What does a dict comprehension look like?",
    "Check whether a number is prime.",
    "Count the words in a sentence.",
    "Print the numbers from one to ten.",
]
HELD_OUT_PROMPTS = [
    "Write a function that multiplies two numbers.",
    "Remove duplicates from a list.",
    "Open a JSON file and load it.",
]
ANSWER = "Here it is."
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def conversation(prompt: str, answer: str = ANSWER) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a helpful coding assistant."},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": answer},
    ]


def make_recipe(tmp: Path, **export_overrides):
    """The validated recipe the export stages read."""
    export = [
        {"type": "merge", "enabled": True, "dtype": "float16"},
        {"type": "gguf", "outtype": "f16", "quantize": ["q8_0", "q4_k_m"], "version": "v1"},
        {"type": "lora_gguf", "outtype": "f16"},
    ]
    config = {
        "name": "tiny-export",
        "description": "Export test recipe",
        "model": {"base": "tiny:qwen2", "license": "apache-2.0"},
        "prompt": {"template": "chatml", "train_on": "assistant"},
        "export": export_overrides.get("export", export),
        "eval": {"smoke": {"prompts": 3, "max_new_tokens": 24, "require_stop": True}},
    }
    return recipe_of(config, tmp)


def run_stage(module, recipe, run_dir: Path, stage: str) -> dict:
    """Run one stage as the pipeline does: with the recipe view it declares, into a fresh
    folder renamed into place on success; returns its outcome's summary."""
    ctx = stage_context(run_dir, stage)
    outcome = helpers.run_stage(module.run, recipe, ctx)
    ctx.out.rename(run_dir / SPECS[stage].folder)
    json.dumps(outcome.to_json())  # an outcome must be JSON-able
    for rel in outcome.outputs.values():
        assert not Path(rel).is_absolute()  # outputs are relative to the stage folder
    return outcome.summary


def fit_adapter(base: Path, out: Path) -> None:
    """A real LoRA (peft) on ``base``, trained on assistant tokens only, saved with its tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    template = load_template("chatml", tokenizer_dir=base)
    tokenizer.chat_template = template.source
    rows = []
    for prompt in TRAIN_PROMPTS:
        messages = conversation(prompt)
        prefix = template.render(messages[:-1], add_generation_prompt=True)
        full = template.render(messages)
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        assert ids[: len(prefix_ids)] == prefix_ids
        labels = [-100] * len(prefix_ids) + ids[len(prefix_ids) :]
        rows.append((torch.tensor([ids]), torch.tensor([labels])))

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        for ids, labels in rows:
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    assert loss.item() < 0.1, f"the fixture adapter did not fit (loss {loss.item():.3f})"
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))  # the trained tokenizer with the training template


def write_axolotl_yaml(path: Path, base: Path) -> None:
    """The Axolotl config of a LoRA run on ``base`` (what merge-lora reads), with its paths
    relative to its folder as the train stage writes them."""
    config = {
        "base_model": str(base),
        "adapter": "lora",
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "lora_target_modules": LORA_TARGETS,
        "datasets": [{"path": "data.jsonl", "type": "chat_template"}],
        "sequence_len": 256,
        "micro_batch_size": 1,
        "num_epochs": 1,
        "learning_rate": 0.005,
        "optimizer": "adamw_torch",
        "output_dir": ".",
        "bf16": False,
        "fp16": False,
        "tf32": False,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="session")
def stage_runner():
    """``run_stage(module, recipe, run_dir, stage)``, for tests that run one more stage."""
    return run_stage


@pytest.fixture(scope="session")
def tiny_qwen2() -> Path:
    from runner.models import resolve_base

    return resolve_base("tiny:qwen2")


@pytest.fixture(scope="session")
def trained_run(tiny_qwen2: Path, tmp_path_factory) -> Path:
    """A run folder with ``data/`` and ``train/`` finished, as the earlier stages leave it."""
    run_dir = tmp_path_factory.mktemp("run")
    train = run_dir / "train"
    train.mkdir()
    fit_adapter(tiny_qwen2, train)
    write_axolotl_yaml(train / "axolotl.yaml", tiny_qwen2)
    save_template(load_template("chatml", tokenizer_dir=train), train)
    data = run_dir / "data"
    data.mkdir()
    for name, prompts in (("train", TRAIN_PROMPTS), ("test", HELD_OUT_PROMPTS)):
        rows = [
            {"id": f"{name}-{i}", "messages": conversation(p), "meta": {}}
            for i, p in enumerate(prompts)
        ]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (train / "data.jsonl").write_text((data / "train.jsonl").read_text())
    return run_dir


@pytest.fixture(scope="session")
def exported_run(trained_run: Path, tmp_path_factory):
    """The same run after the merge and gguf stages, with their summaries."""
    from runner.export import gguf, merge

    recipe = make_recipe(tmp_path_factory.mktemp("recipe"))
    summaries = {
        "merge": run_stage(merge, recipe, trained_run, "merge"),
        "gguf": run_stage(gguf, recipe, trained_run, "gguf"),
    }
    return trained_run, recipe, summaries


GO_HARNESS = Path(__file__).resolve().parents[1] / "go" / "ollama_render"


@pytest.fixture(scope="session")
def go_render():
    """``render(template_text, conversations, legacy=False) -> [str]`` through the Go harness,
    built once per source hash and Go version into the runner's cache."""
    go = shutil.which("go")
    if go is None:
        pytest.skip(
            "Go is not installed (apt-get install golang-go): Ollama's TEMPLATE cannot be rendered"
        )
    from runner.models.cache import build_once, cache_root

    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(version.encode())
    for name in ("go.mod", "main.go"):
        digest.update((GO_HARNESS / name).read_bytes())
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOCACHE": str(cache_root() / "go-build")}
    env.setdefault("HOME", str(cache_root()))

    def build(tmp: Path) -> None:
        subprocess.run(
            [go, "build", "-o", str(tmp / "ollama_render"), "."],
            cwd=GO_HARNESS,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )

    binary = build_once("go", "ollama_render", digest.hexdigest(), build) / "ollama_render"

    def render(
        template: str, conversations, legacy: bool = False, date: str = "", errors: bool = False
    ) -> list[str]:
        """Go's outputs; with ``errors``, a failed case gives ``"error: ..."`` instead of
        failing the test."""
        request = {
            "template": template,
            # A case is a conversation, or a dict such as {"prompt", "suffix"} (an infill request).
            "cases": [
                c if isinstance(c, dict) else {"messages": list(c), "legacy": legacy}
                for c in conversations
            ],
            "date": date,
        }
        done = subprocess.run(
            [str(binary)], input=json.dumps(request), capture_output=True, text=True, check=True
        )
        results = json.loads(done.stdout)["results"]
        if not errors:
            failed = [r["error"] for r in results if "error" in r]
            assert not failed, failed
        return [r["output"] if "output" in r else "error: " + r["error"] for r in results]

    return render
