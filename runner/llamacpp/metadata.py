"""What a GGUF file says about itself (read by ggml's own reader), and how llama.cpp's runtime
tokenizes a text with its vocabulary."""

from __future__ import annotations

import contextlib
import ctypes
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

_TOKEN_KEYS = ("bos", "eos", "eot", "eom", "padding", "unknown")


def read_metadata(gguf_path: Path) -> dict[str, Any]:
    """The GGUF fields the runner checks: architecture, file type, chat template, special ids,
    read by ggml's own reader (``runner.llamacpp.header``).

    ``tokens`` maps each special role (``eos``, ``eot``...) to ``{"id": n, "text": "<|im_end|>"}``.
    """
    from runner.llamacpp.header import GGUFHeader

    with GGUFHeader(gguf_path) as header:
        vocab_size = header.length("tokenizer.ggml.tokens")
        specials: dict[str, dict[str, Any]] = {}
        for role in _TOKEN_KEYS:
            token_id = header.get(f"tokenizer.ggml.{role}_token_id")
            if token_id is None:
                continue
            token_id = int(token_id)
            text = header.item("tokenizer.ggml.tokens", token_id) if token_id < vocab_size else None
            specials[role] = {"id": token_id, "text": text}
        architecture = header.get("general.architecture")
        return {
            "architecture": architecture,
            "name": header.get("general.name"),
            "version": header.get("general.version"),
            "license": header.get("general.license"),
            "context_length": header.get(f"{architecture}.context_length")
            if architecture
            else None,
            "file_type": header.get("general.file_type"),
            "chat_template": header.get("tokenizer.chat_template"),
            "tokenizer_model": header.get("tokenizer.ggml.model"),
            "tokenizer_pre": header.get("tokenizer.ggml.pre"),
            "vocab_size": vocab_size,
            "add_bos_token": header.get("tokenizer.ggml.add_bos_token"),
            "tokens": specials,
            "tensor_types": sorted(header.tensor_types()),
            "adapter_type": header.get("adapter.type"),
        }


class Vocab:
    """llama.cpp's runtime view of a GGUF's vocabulary, loaded once (``vocab_only``: about
    0.35 s for a 151k-token vocabulary). A context manager; raises ``ValueError`` on a
    vocabulary llama.cpp cannot load, with llama.cpp's own reason ("cannot find tokenizer merges
    in model file"), which llama-cpp-python leaves in its silenced log."""

    def __init__(self, gguf_path: Path):
        import llama_cpp

        self._cpp = llama_cpp
        errors: list[str] = []
        try:
            with _errors_logged_to(errors):
                self._llm = llama_cpp.Llama(
                    model_path=str(gguf_path), vocab_only=True, verbose=False
                )
        except (ValueError, RuntimeError) as exc:
            reason = _reason(errors)
            raise ValueError(reason or str(exc)) from exc
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)

    def __enter__(self) -> Vocab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._llm.close()

    def adds_bos(self) -> bool:
        """Whether llama.cpp's tokenizer puts BOS before a prompt (``llama_vocab_get_add_bos``:
        ``tokenizer.ggml.add_bos_token``, or the vocabulary type's default when it is absent)."""
        return bool(self._cpp.llama_vocab_get_add_bos(self._vocab))

    def token_info(self, texts: Sequence[str]) -> dict[str, dict[str, Any]]:
        """How llama.cpp's runtime tokenizes each text, and whether it ends generation there.
        ``end_of_generation`` is llama.cpp's own verdict (``llama_vocab_is_eog``), which is what
        decides whether Ollama or llama.cpp stops."""
        result = {}
        for text in texts:
            ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            eog = len(ids) == 1 and bool(self._cpp.llama_vocab_is_eog(self._vocab, ids[0]))
            result[text] = {"ids": list(ids), "end_of_generation": eog}
        return result


# enum ggml_log_level in the ggml.h llama-cpp-python ships (its _logger.py lists an older order).
_GGML_LOG_LEVEL_ERROR = 4
_GGML_LOG_LEVEL_CONT = 5


@contextlib.contextmanager
def _errors_logged_to(errors: list[str]) -> Iterator[None]:
    """llama.cpp's error-level log lines go to ``errors`` for the block; llama-cpp-python's own
    log callback is put back after it."""
    import llama_cpp
    from llama_cpp import _logger

    last = [0]

    def collect(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level != _GGML_LOG_LEVEL_CONT:
            last[0] = level
        if last[0] == _GGML_LOG_LEVEL_ERROR:
            errors.append(text.decode("utf-8", "replace"))

    callback = llama_cpp.llama_log_callback(collect)  # referenced until it is unset below
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def _reason(errors: list[str]) -> str:
    """The first error line without llama.cpp's function name: ``llama_model_load: error
    loading model: error loading model vocabulary: X`` -> ``error loading model vocabulary: X``
    (the lines after it only say that loading failed)."""
    lines = [line.strip() for line in "".join(errors).splitlines() if line.strip()]
    if not lines:
        return ""
    return re.sub(r"^\w+: (error loading model: )?", "", lines[0])


def token_info(gguf_path: Path, texts: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``Vocab.token_info`` of one file."""
    with Vocab(gguf_path) as vocab:
        return vocab.token_info(texts)
