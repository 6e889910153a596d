"""The shape of a base model (layers, widths, vocabulary), for estimates made before any download.

Read from the model's ``config.json`` when it is on this machine (a local folder, the Hugging Face
cache, a built tiny model); otherwise from the published configs of the code models recipes name
most often, so that ``recipe plan`` can size a run on a laptop that has never fetched the weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied_embeddings: bool
    source: str = "config.json"  # where the numbers come from, for the plan's wording

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one decoder block (a gated MLP)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_width
        return {
            "q_proj": (h, h),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (h, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def parameters(self) -> int:
        """Every weight: embeddings, the blocks (linears and their norms), the head."""
        block = sum(a * b for a, b in self.linear_shapes().values()) + 2 * self.hidden
        embeddings = self.vocab * self.hidden
        head = 0 if self.tied_embeddings else self.vocab * self.hidden
        return embeddings + self.layers * block + self.hidden + head

    def linear_parameters(self) -> int:
        """The weights of the blocks' linear layers: what 4-bit QLoRA quantizes."""
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())


def _shape(h, i, layers, heads, kv, vocab, tied) -> ModelShape:
    return ModelShape(h, i, layers, heads, kv, vocab, tied, source="published config")


# Published config.json values (hidden, intermediate, layers, heads, kv heads, vocab, tied).
PUBLISHED: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-Coder-0.5B": _shape(896, 4864, 24, 14, 2, 151936, True),
    "Qwen/Qwen2.5-Coder-1.5B": _shape(1536, 8960, 28, 12, 2, 151936, True),
    "Qwen/Qwen2.5-Coder-3B": _shape(2048, 11008, 36, 16, 2, 151936, True),
    "Qwen/Qwen2.5-Coder-7B": _shape(3584, 18944, 28, 28, 4, 152064, False),
    "Qwen/Qwen2.5-Coder-14B": _shape(5120, 13824, 48, 40, 8, 152064, False),
    "Qwen/Qwen2.5-Coder-32B": _shape(5120, 27648, 64, 40, 8, 152064, False),
    "Qwen/Qwen2-7B": _shape(3584, 18944, 28, 28, 4, 152064, False),
    "deepseek-ai/deepseek-coder-1.3b": _shape(2048, 5504, 24, 16, 16, 32256, False),
    "deepseek-ai/deepseek-coder-6.7b": _shape(4096, 11008, 32, 32, 32, 32256, False),
    "deepseek-ai/deepseek-coder-33b": _shape(7168, 19200, 62, 56, 8, 32256, False),
    "codellama/CodeLlama-7b": _shape(4096, 11008, 32, 32, 32, 32016, False),
    "codellama/CodeLlama-13b": _shape(5120, 13824, 40, 40, 40, 32016, False),
    "codellama/CodeLlama-34b": _shape(8192, 22016, 48, 64, 8, 32000, False),
    "meta-llama/Llama-2-7b": _shape(4096, 11008, 32, 32, 32, 32000, False),
}


def published_shape(base: str) -> ModelShape | None:
    """A published shape for a hub id, ignoring its -Instruct/-base/-hf suffixes and case."""
    key = base.lower()
    for name, shape in PUBLISHED.items():
        stem = name.lower()
        if key == stem or (key.startswith(stem) and key[len(stem)] in "-_"):
            return shape
    return None


def shape_from_config(config: dict[str, Any], source: str = "config.json") -> ModelShape | None:
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        return ModelShape(
            hidden=hidden,
            intermediate=int(config["intermediate_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            vocab=int(config["vocab_size"]),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            source=source,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cached_config(repo_id: str, revision: str | None) -> dict[str, Any] | None:
    """config.json from the local Hugging Face cache, if the model was fetched (no download)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return _read_config(Path(found)) if isinstance(found, str) else None


def _tiny_shape(base: str) -> ModelShape | None:
    from runner.llamacpp.locate import vocab_gguf
    from runner.models.tiny import tiny_spec

    spec = tiny_spec(base)
    try:
        from runner.llamacpp.header import GGUFHeader

        # llama.cpp's own vocabulary file, read by ggml's reader (gguf-py takes 10 s on Qwen's).
        with GGUFHeader(vocab_gguf(spec.vocab)) as header:
            vocab = header.length("tokenizer.ggml.tokens")
    except Exception:  # noqa: BLE001 - no llama.cpp tree yet: the shape is unknown, not an error
        return None
    return shape_from_config({**spec.config, "vocab_size": vocab}, source="tiny model spec")


def _gguf_shape(base: str) -> ModelShape | None:
    """The shape a GGUF base's header states (llama.cpp's ``<arch>.*`` keys)."""
    from runner.models.gguf_base import locate

    try:
        import gguf

        reader = gguf.GGUFReader(str(locate(base).path))
        fields = reader.fields

        def value(key: str) -> Any:
            found = fields.get(key)
            return None if found is None else found.contents()

        arch = value("general.architecture")
        tokens = fields.get("tokenizer.ggml.tokens")
        config = {
            "hidden_size": value(f"{arch}.embedding_length"),
            "intermediate_size": value(f"{arch}.feed_forward_length"),
            "num_hidden_layers": value(f"{arch}.block_count"),
            "num_attention_heads": value(f"{arch}.attention.head_count"),
            "num_key_value_heads": value(f"{arch}.attention.head_count_kv"),
            "vocab_size": len(tokens.data) if tokens is not None else None,
            "tie_word_embeddings": not any(t.name == "output.weight" for t in reader.tensors),
        }
    except Exception:  # noqa: BLE001 - not on this machine or unreadable: the shape is unknown
        return None
    return shape_from_config(config, source="GGUF header")


def model_shape(base: str, revision: str | None = None) -> ModelShape | None:
    """The shape of ``model.base`` from what this machine has, else a published config."""
    from runner.models.gguf_base import is_gguf_base
    from runner.models.tiny import is_tiny
    from runner.paths import looks_local

    if is_tiny(base):
        return _tiny_shape(base)
    if is_gguf_base(base):
        return _gguf_shape(base)
    if looks_local(base) or Path(base).is_absolute():
        config = _read_config(Path(base).expanduser() / "config.json")
        return shape_from_config(config) if config else None
    config = _cached_config(base, revision)
    if config is not None:
        return shape_from_config(config, source="config.json in the Hugging Face cache")
    return published_shape(base)
