"""The quickstart through the real data stage and real Axolotl training on CPU.

All tests here share one run (see conftest.py): started, killed after its first checkpoint,
resumed, finished.
"""

from __future__ import annotations

import json

import pytest
import yaml

from runner.pipeline import run_pipeline
from runner.run.folder import LOCK

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("quickstart-train")]


def test_loss_went_down_and_the_adapter_exists(trained_quickstart):
    train_dir = trained_quickstart.run_dir / "train"
    assert (train_dir / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((train_dir / "adapter_config.json").read_text())["peft_type"] == "LORA"
    rows = [json.loads(line) for line in (train_dir / "losses.jsonl").read_text().splitlines()]
    losses = [e for e in rows if "loss" in e]  # validation losses have their own rows
    assert [e["step"] for e in losses] == list(range(1, 11))
    first, last = [e["loss"] for e in losses[:3]], [e["loss"] for e in losses[-3:]]
    assert sum(last) / 3 < sum(first) / 3


def test_the_killed_run_resumed_from_its_checkpoint(trained_quickstart):
    summary = trained_quickstart.train
    assert trained_quickstart.killed_at.startswith("checkpoint-")
    killed_step = int(trained_quickstart.killed_at.split("-")[1])
    assert any(n.startswith("resumed from checkpoint-") for n in summary.notes)
    assert "reused the tokenized data of the interrupted attempt" in summary.notes
    log = (trained_quickstart.run_dir / "logs" / "train.log").read_text()
    second_attempt = log.rsplit("axolotl train ", 1)[1]
    assert "resume from checkpoint at" in second_attempt
    # Only the steps after the checkpoint were trained again.
    assert second_attempt.count("{'loss':") == 10 - killed_step
    assert not list((trained_quickstart.run_dir / "train").glob("checkpoint-*"))


def test_tokenized_labels_were_checked(trained_quickstart):
    manifest = json.loads(
        (trained_quickstart.run_dir / "train" / "stage.manifest.json").read_text()
    )
    summary = manifest["outcome"]["summary"]
    assert summary["trained_turns_checked"] >= summary["examples"]["train"]
    assert summary["over_seq_len"] == 0


def test_axolotl_config_paths_are_relative_to_its_folder(trained_quickstart):
    cfg = yaml.safe_load((trained_quickstart.run_dir / "axolotl.yaml").read_text())
    final = (trained_quickstart.run_dir / "train").resolve()
    # Relative to the train folder, where Axolotl runs: true before and after the rename.
    assert cfg["output_dir"] == "."
    assert (final / cfg["datasets"][0]["path"]).is_file()
    assert ".partial" not in (trained_quickstart.run_dir / "axolotl.yaml").read_text()
    assert cfg["chat_template"] == "jinja" and cfg["eot_tokens"] == ["<|im_end|>"]
    assert cfg["bf16"] is False and cfg["lora_mlp_kernel"] is False


def test_lock_file(trained_quickstart):
    lock = json.loads((trained_quickstart.run_dir / LOCK).read_text())
    assert lock["recipe"]["train"]["epochs"] == 1
    assert lock["seed"] == trained_quickstart.recipe.train.seed
    assert lock["base_model"]["ref"] == "tiny:qwen2"
    [source] = [p for p in lock["inputs"] if p.endswith("instructions.jsonl")]
    assert len(lock["inputs"][source]) == 64
    for tool in ("python", "torch", "transformers", "axolotl", "llama-cpp-python"):
        assert lock["versions"][tool] not in ("", "absent")


def test_running_again_does_nothing(trained_quickstart):
    # (Its speed is measured in bench/bench_pipeline.py, not asserted here.)
    messages = []
    again = run_pipeline(
        trained_quickstart.recipe, until="train", root=trained_quickstart.root, say=messages.append
    )
    assert [s.status for s in again.stages] == ["cached", "cached"]
    assert messages[-1].startswith("nothing to do")
