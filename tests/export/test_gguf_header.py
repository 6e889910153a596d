"""ggml's own GGUF reader (``runner.llamacpp.header``) against gguf-py's, on llama.cpp's real
vocabulary files and on a file with tensors written by gguf-py."""

from __future__ import annotations

import numpy as np
import pytest

from runner.llamacpp import read_metadata, vocab_gguf
from runner.llamacpp.header import GGUFHeader

VOCABS = ["qwen2", "deepseek-coder", "llama-spm", "starcoder"]


def _expected(value):
    """gguf-py's value; floats compared as float32 (ggml returns them as C floats)."""
    return pytest.approx(value) if isinstance(value, float) else value


@pytest.mark.parametrize("vocab", VOCABS)
def test_every_key_reads_as_gguf_py_reads_it(vocab):
    import gguf

    path = vocab_gguf(vocab)
    fields = {
        k: f for k, f in gguf.GGUFReader(str(path)).fields.items() if not k.startswith("GGUF.")
    }
    with GGUFHeader(path) as header:
        assert set(header.keys()) == set(fields)
        for key, field in fields.items():
            if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
                n = len(field.data)
                assert header.length(key) == n, key
                for i in {0, 1, n // 2, n - 1} & set(range(n)):
                    assert header.item(key, i) == _expected(field.contents(i)), (key, i)
                if key in ("tokenizer.ggml.token_type", "tokenizer.ggml.scores"):
                    assert header.get(key) == _expected(field.contents()), key  # read at once
            else:
                assert header.get(key) == _expected(field.contents()), key
        assert header.get("no.such.key", "absent") == "absent"
        assert header.length("no.such.key") == 0
        with pytest.raises(IndexError):
            header.item("tokenizer.ggml.tokens", header.length("tokenizer.ggml.tokens"))


def test_tensor_types_and_metadata_of_a_written_file(tmp_path):
    import gguf
    from gguf.quants import quantize

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(4096)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_token_list(["<s>", "</s>", "a"])
    writer.add_eos_token_id(1)
    writer.add_bool("tokenizer.ggml.add_bos_token", False)
    writer.add_array("test.floats", [0.5, 1.5])
    weights = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    writer.add_tensor("a.weight", weights)
    writer.add_tensor("b.weight", weights.astype(np.float16))
    q8 = quantize(weights, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("c.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    with GGUFHeader(path) as header:
        assert header.tensor_types() == {"F32", "F16", "Q8_0"}
        assert header.get("test.floats") == [0.5, 1.5]
        assert header.get("tokenizer.ggml.add_bos_token") is False
    meta = read_metadata(path)
    assert meta["tensor_types"] == ["F16", "F32", "Q8_0"]
    assert (meta["architecture"], meta["name"], meta["context_length"]) == ("llama", "tiny", 4096)
    assert meta["file_type"] == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert meta["tokens"] == {"eos": {"id": 1, "text": "</s>"}}
    assert meta["vocab_size"] == 3
    assert meta["adapter_type"] is None


def test_a_file_that_is_not_gguf_is_an_error_not_a_crash(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\xff" * 64)
    with pytest.raises(ValueError, match="not a GGUF file ggml can read"):
        GGUFHeader(junk)
    with pytest.raises(ValueError):
        GGUFHeader(tmp_path / "missing.gguf")


def test_llama_cpp_loads_a_vocabulary_once_and_says_why_it_refuses_one(tmp_path, capsys):
    """Vocab answers BOS and end-of-generation from llama.cpp itself; a file it refuses raises
    ValueError with llama.cpp's own reason (llama-cpp-python only says "Failed to load")."""
    import gguf
    import llama_cpp

    from runner.llamacpp import Vocab

    with Vocab(vocab_gguf("qwen2")) as vocab:
        assert vocab.adds_bos() is False
        info = vocab.token_info(["<|im_end|>", "hello world"])
    assert info["<|im_end|>"]["end_of_generation"] and len(info["<|im_end|>"]["ids"]) == 1
    assert not info["hello world"]["end_of_generation"] and len(info["hello world"]["ids"]) == 2
    with Vocab(vocab_gguf("llama-spm")) as vocab:
        assert vocab.adds_bos() is True

    path = tmp_path / "no-merges.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    refused = r"^error loading model vocabulary: cannot find tokenizer merges in model file$"
    with pytest.raises(ValueError, match=refused):
        Vocab(path)
    with pytest.raises(ValueError, match="does not exist"):
        Vocab(tmp_path / "missing.gguf")
    # llama-cpp-python's own log callback is back: a verbose load prints the reason again.
    capsys.readouterr()
    with pytest.raises(ValueError):
        llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=True)
    assert "cannot find tokenizer merges" in capsys.readouterr().err
