"""runner.llamacpp without a model: argument building, errors, the quantizer's failure path."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import llamacpp
from runner.errors import StageError, UserError
from runner.llamacpp import convert


def test_unknown_quantization_type_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown quantization type 'q3_xl'"):
        llamacpp.quantize(tmp_path / "a.gguf", tmp_path / "b.gguf", "q3_xl")


def test_quantizer_failure_fails_the_stage_with_its_log(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf")
    with pytest.raises(StageError, match="exited with status"):
        llamacpp.quantize(tmp_path / "broken.gguf", tmp_path / "out.gguf", "q8_0")
    assert not (tmp_path / "out.gguf").exists()
    assert "llama_model_quantize returned" in (tmp_path / "out.gguf.log").read_text()


def test_missing_llama_cpp_tree_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RECIPE_LLAMA_CPP_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="RECIPE_LLAMA_CPP_DIR"):
        llamacpp.llama_cpp_dir()


def test_converter_runs_against_its_own_gguf_py():
    env = convert.converter_env()
    assert env["PYTHONPATH"].split(":")[0] == str(llamacpp.llama_cpp_dir() / "gguf-py")
    argv = convert.converter_argv(Path("m"), Path("o.gguf"), "bf16")
    script = str(llamacpp.llama_cpp_dir() / "convert_hf_to_gguf.py")
    assert argv[1:] == [script, "m", "--outfile", "o.gguf", "--outtype", "bf16"]
    with pytest.raises(UserError):
        convert.converter_argv(Path("m"), Path("o.gguf"), "q4_k_m")


def test_the_recipe_names_the_gguf():
    """general.name/version/license come from a --metadata file the converter reads."""
    argv = convert.converter_argv(Path("m"), Path("o.gguf"), "f16", Path("meta.json"))
    assert argv[-2:] == ["--metadata", "meta.json"]


def test_the_server_is_llama_cpp_s_own_bound_to_localhost(monkeypatch):
    from runner.llamacpp import runtime, server

    argv = server.server_argv(Path("m.gguf"), 8123, 512, Path("a.gguf"))
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    assert argv[3:] == [
        "--model", "m.gguf", "--host", "127.0.0.1", "--port", "8123", "--n_ctx", "512",
        "--seed", "0", "--lora_path", "a.gguf",
    ]  # fmt: skip
    # Where llama.cpp's extra CPU buffers crashed, the same server starts without them.
    monkeypatch.setattr(runtime, "_EXTRA_BUFFERS", False)
    assert server.server_argv(Path("m.gguf"), 8123, 512)[1:4] == [
        "-m",
        "runner.llamacpp",
        "serve-without-extra-buffers",
    ]
