"""Model card content and the hub stage (only the network calls of huggingface_hub are mocked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import StageError
from runner.export import hub
from runner.export.card import render_card
from runner.run.stages import SPECS
from tests.helpers import recipe_of, run_stage, stage_context


def make_recipe(tmp: Path, artifacts=("adapter", "gguf", "card"), base=None, **extra):
    (tmp / "data").mkdir(exist_ok=True)
    (tmp / "data" / "zig.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp / "src" / "zig").mkdir(parents=True, exist_ok=True)
    config = {
        "name": "zig-helper",
        "description": "Answers Zig questions.",
        "sources": [
            {"type": "instructions", "path": "data/zig.jsonl"},
            {"type": "repo", "path": "src/zig", "name": "stdlib"},
        ],
        "filters": [{"type": "length", "min_chars": 20}, {"type": "exact_dedupe"}],
        "model": {"base": base or "Qwen/Qwen2.5-Coder-7B-Instruct", "license": "apache-2.0"},
        "prompt": {"template": "chatml"},
        "lora": {"r": 16, "alpha": 32},
        "train": {"epochs": 2, "learning_rate": 0.0002, "seq_len": 2048},
        "export": [
            {"type": "merge"},
            {"type": "gguf", "outtype": "f16", "quantize": ["q4_k_m"]},
            {"type": "ollama", "model": "zig-helper:1"},
            {
                "type": "hub",
                "repo_id": "me/zig-helper",
                "private": True,
                "artifacts": list(artifacts),
            },
        ],
        **extra,
    }
    return recipe_of(config, tmp)


def folders(run: Path) -> dict[str, Path | None]:
    """The finished stage folders of a run, by stage name, as the hub stage gets them."""
    return {
        name: (run / SPECS[name].folder if (run / SPECS[name].folder).is_dir() else None)
        for name in SPECS["hub"].after
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run folder with the files the card and the hub stage read."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "report.json").write_text(
        json.dumps(
            {
                "sources": {
                    "instructions0": {"type": "instructions", "in train": 90, "in test": 10},
                    "stdlib": {"type": "repo", "in train": 40},
                },
                "filters": [
                    {"index": 0, "type": "length", "dropped": {"below min_chars": 7}},
                    {"index": 1, "type": "exact_dedupe", "dropped": {"exact duplicate": 3}},
                ],
                "split": {"written": {"train": 130, "test": 10}},
            }
        )
    )
    (run / "eval").mkdir()
    (run / "eval" / "results.json").write_text(
        json.dumps(
            {
                "loss": {"base": 2.5, "tuned": 1.25, "improvement": 1.25},
                "pass_rate": {"base": 0.2, "tuned": 0.7},
                "gate": {"passed": True},
            }
        )
    )
    (run / "smoke").mkdir()
    (run / "smoke" / "smoke.json").write_text(
        json.dumps(
            {
                "models": {
                    "q4_k_m": {
                        "passed": True,
                        "answers": [{"checks": {"stopped_on_end_token": True}}] * 3,
                    }
                }
            }
        )
    )
    (run / "gguf").mkdir()
    (run / "gguf" / "zig-helper-f16.gguf").write_bytes(b"x" * 2048)
    (run / "gguf" / "zig-helper-q4_k_m.gguf").write_bytes(b"x" * 1024)
    (run / "ollama").mkdir()
    (run / "ollama" / "Modelfile").write_text("FROM ./zig-helper-q4_k_m.gguf\n")
    train = run / "train"
    train.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json"):
        (train / name).write_text("{}")
    (train / "chat_template.jinja").write_text("{{ messages }}")
    (train / "losses.jsonl").write_text("")  # not part of an upload
    return run


def test_card_describes_the_run(tmp_path, run_dir):
    card = render_card(make_recipe(tmp_path), folders(run_dir))
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "base_model: Qwen/Qwen2.5-Coder-7B-Instruct" in card
    assert "# zig-helper" in card
    assert "A LoRA fine-tune of `Qwen/Qwen2.5-Coder-7B-Instruct`" in card
    assert f"| instructions | `{tmp_path / 'data/zig.jsonl'}` | 100 |" in card
    assert f"| repo | `{tmp_path / 'src/zig'}` | 40 |" in card
    assert "Split: train 130, test 10." in card
    assert "- `length`: min_chars=20 (dropped 7)" in card
    assert "- `exact_dedupe` (dropped 3)" in card
    assert "| lora.r | `16` |" in card
    assert "| train.learning_rate | `0.0002` |" in card
    assert "| tuned | 1.25 |" in card
    assert "| pass rate (tuned) | 0.7 |" in card
    assert "| q4_k_m | yes | 3/3 |" in card
    assert "| `zig-helper-q4_k_m.gguf` | 1.0 KB |" in card
    assert "llama-cli -m zig-helper-q4_k_m.gguf -cnv" in card
    assert "ollama create zig-helper:1 -f Modelfile" in card


def test_card_says_what_did_not_run(tmp_path):
    empty = tmp_path / "run"
    empty.mkdir()
    card = render_card(make_recipe(tmp_path), folders(empty))
    assert "The evaluation stage did not run for this model." in card
    assert "The data stage's report.json was not found in this run." in card


def test_card_of_a_tiny_model_says_it_is_a_test_model(tmp_path, run_dir):
    recipe = make_recipe(tmp_path, base="tiny:qwen2")
    card = render_card(recipe, folders(run_dir))
    assert "randomly initialised test model" in card
    assert "base_model:" not in card


def run_hub(recipe, run_dir: Path) -> dict:
    return run_stage(hub.run, recipe, stage_context(run_dir, "hub")).summary


def test_without_a_token_the_folder_is_prepared_and_says_so(tmp_path, run_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login either
    summary = run_hub(make_recipe(tmp_path), run_dir)
    assert summary["uploaded"] is False
    assert "no Hugging Face token" in summary["note"]
    assert "hf upload me/zig-helper" in summary["note"]
    assert summary["files"] == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "chat_template.jinja",
        "tokenizer.json",
        "zig-helper-f16.gguf",
        "zig-helper-q4_k_m.gguf",
    ]
    upload = run_dir / ".hub.tmp" / "upload"
    assert (upload / "README.md").read_text().startswith("---\nlicense: apache-2.0")
    assert json.loads((run_dir / ".hub.tmp" / "hub.json").read_text())["uploaded"] is False


def test_with_a_token_it_uploads(tmp_path, run_dir, monkeypatch):
    from huggingface_hub import HfApi

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs
        calls["uploaded_files"] = sorted(p.name for p in Path(kwargs["folder_path"]).rglob("*"))

        class Commit:
            oid = "abc123"

        return Commit()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    summary = run_hub(make_recipe(tmp_path, artifacts=("gguf", "modelfile", "card")), run_dir)
    assert summary["uploaded"] is True
    assert summary["url"] == "https://huggingface.co/me/zig-helper"
    assert summary["commit"] == "abc123"
    assert calls["create_repo"] == (
        "me/zig-helper",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    assert calls["upload_folder"]["repo_id"] == "me/zig-helper"
    assert calls["uploaded_files"] == [
        "Modelfile",
        "README.md",
        "zig-helper-f16.gguf",
        "zig-helper-q4_k_m.gguf",
    ]


def test_offline_with_a_token_does_not_upload(tmp_path, run_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    summary = run_hub(make_recipe(tmp_path), run_dir)
    assert summary["uploaded"] is False
    assert summary["note"].startswith("HF_HUB_OFFLINE is set: not uploading")


def test_an_artifact_the_run_did_not_produce_is_an_error(tmp_path, run_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(StageError, match="artifacts lists merged, but this run produced none"):
        run_hub(make_recipe(tmp_path, artifacts=("merged", "card")), run_dir)
