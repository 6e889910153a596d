"""What a GGUF file says about itself (read with the ``gguf`` package), and how llama.cpp's runtime
tokenizes a text with its vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

_TOKEN_KEYS = ("bos", "eos", "eot", "eom", "padding", "unknown")


def read_metadata(gguf_path: Path) -> dict[str, Any]:
    """The GGUF fields the runner checks: architecture, file type, chat template, special ids.

    ``tokens`` maps each special role (``eos``, ``eot``...) to ``{"id": n, "text": "<|im_end|>"}``.
    """
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    fields = reader.fields

    def value(key: str) -> Any:
        f = fields.get(key)
        return None if f is None else f.contents()

    token_list = fields.get("tokenizer.ggml.tokens")
    specials: dict[str, dict[str, Any]] = {}
    for role in _TOKEN_KEYS:
        token_id = value(f"tokenizer.ggml.{role}_token_id")
        if token_id is None:
            continue
        text = token_list.contents(int(token_id)) if token_list is not None else None
        specials[role] = {"id": int(token_id), "text": text}
    architecture = value("general.architecture")
    return {
        "architecture": architecture,
        "name": value("general.name"),
        "version": value("general.version"),
        "license": value("general.license"),
        "context_length": value(f"{architecture}.context_length") if architecture else None,
        "file_type": value("general.file_type"),
        "chat_template": value("tokenizer.chat_template"),
        "tokenizer_model": value("tokenizer.ggml.model"),
        "tokenizer_pre": value("tokenizer.ggml.pre"),
        "vocab_size": len(token_list.data) if token_list is not None else 0,
        "add_bos_token": value("tokenizer.ggml.add_bos_token"),
        "tokens": specials,
        "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
        "adapter_type": value("adapter.type"),
    }


def adds_bos(gguf_path: Path) -> bool:
    """Whether llama.cpp's tokenizer puts BOS before a prompt (``llama_vocab_get_add_bos``:
    ``tokenizer.ggml.add_bos_token``, or the vocabulary type's default when it is absent)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        return bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))
    finally:
        llm.close()


def token_info(gguf_path: Path, texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """How llama.cpp's runtime tokenizes each text, and whether it ends generation there.

    Loads only the vocabulary. ``end_of_generation`` is llama.cpp's own verdict
    (``llama_vocab_is_eog``), which is what decides whether Ollama or llama.cpp stops.
    """
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        result = {}
        for text in texts:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            eog = len(ids) == 1 and bool(llama_cpp.llama_vocab_is_eog(vocab, ids[0]))
            result[text] = {"ids": list(ids), "end_of_generation": eog}
        return result
    finally:
        llm.close()
