"""tiny:deepseek-coder converts to a GGUF whose tokenizer llama.cpp can run.

transformers' GGUF reader gives the byte-level DeepSeek-Coder vocab a SentencePiece-style
tokenizer.json; llama.cpp's converter then wrote ``tokenizer.ggml.model: llama`` (llama.cpp
aborted on the first tokenize) and 13 added tokens decoded to the same '\ufffd' (llama.cpp
refused the vocab). The real chain is in tests/pipeline/test_deepseek_eot.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runner.models import load_tokenizer, resolve_base

pytestmark = pytest.mark.slow

PROMPT = "<｜begin▁of▁sentence｜>### Instruction:\nhi déjà 🙂 õ\n### Response:\n<|EOT|>"


def test_deepseek_tokenizer_is_plain_byte_level():
    data = json.loads((resolve_base("tiny:deepseek-coder") / "tokenizer.json").read_text())
    assert data["model"]["type"] == "BPE" and data["model"]["byte_fallback"] is False
    assert data["decoder"]["type"] == "ByteLevel"
    plain = [t for t in data["added_tokens"] if not t["special"]]
    assert plain and all(t["normalized"] for t in plain)


def test_deepseek_gguf_tokenizes_like_transformers(tmp_path):
    from runner import llamacpp

    base = resolve_base("tiny:deepseek-coder")
    out = llamacpp.convert_model(base, tmp_path / "ds-f16.gguf", "f16")
    # A child process: llama.cpp aborts the whole process on a broken vocab.
    code = (
        "import json, sys; from llama_cpp import Llama; "
        "llm = Llama(sys.argv[1], n_ctx=64, verbose=False); "
        "print(json.dumps(llm.tokenize(sys.argv[2].encode(), add_bos=False, special=True)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out), PROMPT], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    tokenizer = load_tokenizer("tiny:deepseek-coder")
    assert ids == tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    assert llamacpp.read_metadata(out)["tokens"]["eos"]["text"] == "<｜end▁of▁sentence｜>"
