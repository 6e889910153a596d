"""`model.base` as a GGUF file or an Ollama model: refused at validate time when it cannot be
dequantized or is not there, and only its adapter is exported unless a merge is asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.models.gguf_base import is_gguf_base, locate, unsupported_reason
from runner.recipe.problems import RecipeErrors
from tests.helpers import recipe_of
from tests.models.test_ollama_store import pull

ADAPTER_EXPORTS = [
    {"type": "lora_gguf"},
    {"type": "ollama", "model": "mine:v1", "from": "adapter"},
]


def write_gguf(path: Path, architecture: str = "llama", dtype: str = "float32") -> Path:
    """A GGUF header with one tensor: enough for what validation reads."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def problems_of(config: dict, folder: Path) -> list[str]:
    with pytest.raises(RecipeErrors) as caught:
        recipe_of(config, folder)
    return [p.render() for p in caught.value.problems if not p.warning]


def warnings_of(config: dict, folder: Path) -> list[str]:
    return [w for w in recipe_of(config, folder).warnings if "model.base" in w]


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("./models/codellama-7b.Q4_K_M.gguf", True),
        ("/abs/Model.GGUF", True),
        ("ollama:deepseek-coder:6.7b", True),
        ("tiny:qwen2", False),
        ("Qwen/Qwen2.5-Coder-1.5B-Instruct", False),
        ("./models/qwen", False),
    ],
)
def test_what_counts_as_a_gguf_base(base, expected):
    assert is_gguf_base(base) is expected


def test_the_header_decides_what_can_be_dequantized(tmp_path):
    assert unsupported_reason(write_gguf(tmp_path / "ok.gguf"), "ok.gguf") is None
    reason = unsupported_reason(write_gguf(tmp_path / "r.gguf", "rwkv6"), "r.gguf")
    assert reason.startswith(
        "r.gguf is a 'rwkv6' model, an architecture transformers' GGUF loader cannot dequantize"
    )
    assert "start from the model's Hugging Face weights instead" in reason
    f64 = unsupported_reason(write_gguf(tmp_path / "d.gguf", dtype="float64"), "d.gguf")
    assert f64.startswith("d.gguf has tensors of type F64, which gguf-py (transformers' GGUF")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF not really")
    assert unsupported_reason(junk, "junk.gguf").startswith("junk.gguf is not a readable GGUF")


def test_an_unsupported_architecture_is_refused_at_validate_time(tmp_path):
    write_gguf(tmp_path / "rwkv.gguf", "rwkv6")
    config = {"model": {"base": "./rwkv.gguf"}, "export": ADAPTER_EXPORTS}
    [problem] = problems_of(config, tmp_path)
    assert "model.base: " in problem
    assert "is a 'rwkv6' model, an architecture transformers' GGUF loader" in problem


def test_a_missing_gguf_file_is_a_warning_at_validate_time_and_an_error_at_run_time(tmp_path):
    from runner.errors import UserError
    from runner.models import resolve_base

    [warning] = warnings_of({"model": {"base": "./gone.Q4_K_M.gguf"}}, tmp_path)
    assert "model.base: " in warning and "gone.Q4_K_M.gguf does not exist" in warning
    with pytest.raises(UserError, match="the GGUF file .*gone.Q4_K_M.gguf does not exist"):
        resolve_base(str(tmp_path / "gone.Q4_K_M.gguf"))


def test_a_missing_ollama_model_names_the_pull(monkeypatch, tmp_path):
    from runner.errors import UserError
    from runner.models import resolve_base

    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    [warning] = warnings_of({"model": {"base": "ollama:deepseek-coder:6.7b"}}, tmp_path)
    assert "model.base: the Ollama model 'deepseek-coder:6.7b' is not in the local" in warning
    assert "run `ollama pull deepseek-coder:6.7b` first" in warning
    with pytest.raises(UserError, match="run `ollama pull deepseek-coder:6.7b` first"):
        resolve_base("ollama:deepseek-coder:6.7b")


def test_a_merge_of_a_gguf_base_is_refused_unless_asked(tmp_path):
    write_gguf(tmp_path / "m.Q8_0.gguf")
    merged = [{"type": "merge"}, {"type": "gguf"}]
    [problem] = problems_of({"model": {"base": "./m.Q8_0.gguf"}, "export": merged}, tmp_path)
    assert "export[0].type: model.base './m.Q8_0.gguf' is a GGUF" in problem.replace(
        str(tmp_path) + "/", "./"
    )
    assert "set from_dequantized: true to merge anyway" in problem
    asked = [{"type": "merge", "from_dequantized": True}, {"type": "gguf"}]
    recipe_of({"model": {"base": "./m.Q8_0.gguf"}, "export": asked}, tmp_path)


def test_an_ollama_base_is_the_modelfiles_from(monkeypatch, tmp_path):
    from runner.export.ollama import pulled_base

    store = tmp_path / "store"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    blob = write_gguf(tmp_path / "weights.gguf").read_bytes()
    pull(store, "ollama:tiny-coder:q8", blob, template="{{ .Prompt }}")
    recipe = recipe_of(
        {"model": {"base": "ollama:tiny-coder:q8"}, "export": ADAPTER_EXPORTS}, tmp_path
    )
    located = locate(recipe.model.base)
    assert located.path.read_bytes() == blob
    assert located.from_ref == "tiny-coder:q8"
    assert pulled_base(recipe, recipe.exports("ollama")[0]) == "tiny-coder:q8"
    # The adapter applies to the pulled blob itself: that is what smoke loads.
    lora = recipe.exports("lora_gguf")[0]
    assert lora.base_path(recipe, tmp_path / "gguf") == located.path


def test_pulling_an_ollama_model_again_changes_the_train_key(monkeypatch, tmp_path):
    from runner.run.keys import stage_material
    from runner.run.stages import SPECS

    store = tmp_path / "store"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    config = {"model": {"base": "ollama:m:1"}, "export": ADAPTER_EXPORTS}
    digests = []
    for name in ("v1.gguf", "v2.gguf"):
        weights = write_gguf(tmp_path / name, "llama" if name == "v1.gguf" else "qwen2")
        pull(store, "ollama:m:1", weights.read_bytes())
        recipe = recipe_of(config, tmp_path)
        digests.append(stage_material(recipe, SPECS["train"])["base_build"])
    assert digests[0] != digests[1]
    assert all(len(d) == 64 for d in digests)
