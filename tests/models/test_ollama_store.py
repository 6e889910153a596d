"""`ollama:NAME:TAG` resolved offline from a store laid out as Ollama lays it out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.models.ollama_store import find_model, parse_name, store_candidates

TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"


def add_blob(store: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (store / "blobs").mkdir(parents=True, exist_ok=True)
    (store / "blobs" / f"sha256-{digest}").write_bytes(data)
    return f"sha256:{digest}"


def pull(store: Path, name: str, model: bytes, **layers: str) -> Path:
    """Write a model into ``store`` the way ``ollama pull`` leaves it (server/manifest.go)."""
    entries = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": add_blob(store, model)}
    ]
    for kind, text in layers.items():
        entries.append(
            {
                "mediaType": f"application/vnd.ollama.image.{kind}",
                "digest": add_blob(store, text.encode()),
                "size": len(text),
            }
        )
    config = add_blob(store, b'{"model_format":"gguf"}')
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config},
        "layers": entries,
    }
    parsed = parse_name(name)
    path = parsed.manifest(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("ollama:qwen2.5-coder:1.5b", ("registry.ollama.ai", "library", "qwen2.5-coder", "1.5b")),
        ("ollama:deepseek-coder", ("registry.ollama.ai", "library", "deepseek-coder", "latest")),
        ("ollama:me/coder:v1", ("registry.ollama.ai", "me", "coder", "v1")),
        ("ollama:hf.co/org/model:Q4_K_M", ("hf.co", "org", "model", "Q4_K_M")),
    ],
)
def test_names_are_split_as_ollama_does(name, parts):
    parsed = parse_name(name)
    assert (parsed.host, parsed.namespace, parsed.model, parsed.tag) == parts
    assert parsed.written == name.removeprefix("ollama:")


@pytest.mark.parametrize("name", ["ollama:", "ollama:a/b/c/d", "ollama:bad name:1", "ollama:x:"])
def test_a_malformed_name_is_refused(name):
    if name == "ollama:x:":  # an empty tag is the default tag, as in Ollama
        assert parse_name(name).tag == "latest"
        return
    with pytest.raises(UserError, match="is not an Ollama model name"):
        parse_name(name)


def test_a_pulled_model_resolves_to_its_blobs(monkeypatch, tmp_path):
    store = tmp_path / "store"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    pull(
        store,
        "ollama:tiny-coder:q8",
        b"GGUF model bytes",
        template=TEMPLATE,
        system="You are terse.",
        params='{"stop": ["<|im_end|>"], "temperature": 0.2}',
    )
    model = find_model("ollama:tiny-coder:q8")
    assert model.gguf.read_bytes() == b"GGUF model bytes"
    assert model.digest == hashlib.sha256(b"GGUF model bytes").hexdigest()
    assert model.template == TEMPLATE
    assert model.system == "You are terse."
    assert model.params == {"stop": ["<|im_end|>"], "temperature": 0.2}
    assert model.name.written == "tiny-coder:q8"


def test_a_missing_model_names_where_it_looked_and_the_pull(monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    with pytest.raises(UserError) as info:
        find_model("ollama:deepseek-coder:6.7b")
    message = str(info.value)
    looked = tmp_path / "store/manifests/registry.ollama.ai/library/deepseek-coder/6.7b"
    assert str(looked) in message
    assert "`ollama pull deepseek-coder:6.7b`" in message


def test_a_missing_blob_is_named(monkeypatch, tmp_path):
    store = tmp_path / "store"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    pull(store, "ollama:m:1", b"weights")
    blob = store / "blobs" / f"sha256-{hashlib.sha256(b'weights').hexdigest()}"
    blob.unlink()
    with pytest.raises(UserError, match=f"{blob} is missing; run `ollama pull m:1` again"):
        find_model("ollama:m:1")


def test_the_default_stores(monkeypatch, tmp_path):
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store_candidates() == [
        tmp_path / ".ollama" / "models",
        Path("/usr/share/ollama/.ollama/models"),
    ]
