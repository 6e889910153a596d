"""model.base resolution (offline only) and the early convertibility check."""

from __future__ import annotations

import json
import shutil

import pytest

from runner.errors import UserError
from runner.models import check_convertible, resolve_base
from runner.models.convertible import pre_tokenizer_hash, supported_architectures

pytestmark = pytest.mark.xdist_group("tiny-models")


def test_local_folder_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_base(str(tmp_path)) == tmp_path.resolve()


def test_local_folder_without_config_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="has no config.json"):
        resolve_base(str(tmp_path))


def test_uncached_hub_id_is_a_clear_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"not in the local Hugging Face cache.*hf download"):
        resolve_base("someone/never-downloaded-model")


def test_nonsense_base_is_a_user_error():
    with pytest.raises(UserError, match="neither a folder"):
        resolve_base("not a model at all")


def test_converter_architectures_are_read_from_its_source():
    names = supported_architectures()
    assert {"Qwen2ForCausalLM", "LlamaForCausalLM"} <= names
    assert "NoSuchModelForCausalLM" not in names


def test_tiny_bases_are_convertible():
    assert check_convertible("tiny:qwen2") == []
    assert check_convertible("tiny:llama") == []


def test_unsupported_architecture_warns(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["NoSuchModelForCausalLM"]}))
    (tmp_path / "tokenizer.model").write_bytes(b"")
    [warning] = check_convertible(str(tmp_path))
    assert "does not support the architecture NoSuchModelForCausalLM" in warning


def test_missing_tokenizer_warns(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    [warning] = check_convertible(str(tmp_path))
    assert "neither tokenizer.json nor tokenizer.model" in warning


def test_uncached_hub_id_warns_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    [warning] = check_convertible("someone/never-downloaded-model")
    assert warning.startswith("cannot check GGUF conversion yet")


@pytest.mark.slow
def test_real_pre_tokenizer_is_recognised_and_a_changed_one_is_not(tmp_path):
    """The converter fingerprints BPE pre-tokenizers (llama.cpp#8649); a tweak must warn."""
    base = resolve_base("tiny:qwen2")
    assert check_convertible(str(base)) == []
    copy = tmp_path / "model"
    copy.mkdir()
    for name in ("config.json", "tokenizer_config.json"):
        shutil.copy(base / name, copy / name)
    data = json.loads((base / "tokenizer.json").read_text())
    data["pre_tokenizer"] = {"type": "Whitespace"}  # a pre-tokenizer no known model uses
    (copy / "tokenizer.json").write_text(json.dumps(data))
    assert pre_tokenizer_hash(copy / "tokenizer.json") != pre_tokenizer_hash(
        base / "tokenizer.json"
    )
    [warning] = check_convertible(str(copy))
    assert "does not recognise this tokenizer's BPE pre-tokenizer" in warning


def test_an_unknown_tiny_name_is_left_to_its_own_error():
    assert check_convertible("tiny:qwen") == []
