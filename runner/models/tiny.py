"""Built-in tiny base models: ``tiny:qwen2``, ``tiny:llama``, ``tiny:deepseek-coder``.

Model weights cannot be downloaded here, so the runner builds small models itself: a randomly
initialised network of the family's architecture (two layers, hidden and intermediate sizes that
are multiples of 256 so that llama.cpp's K-quants apply to every matrix) with the family's REAL
tokenizer, read from the vocab-only GGUF files that llama.cpp ships, and the family's real chat
template. The real converter recognises such a tokenizer, the real trainer trains on it, and the
real traps stay in: the Qwen2 tokenizer's eos and pad are both ``<|endoftext|>`` while ChatML
turns end with ``<|im_end|>`` (ggml-org/llama.cpp#9606). They are not "fixed" here. One thing is
not random: ``tiny:deepseek-coder`` is built with a previous-token head (``_previous_token_head``),
which its template's newline before ``<|EOT|>`` needs and a LoRA does not grow in a few steps.

Each model is built once per build spec and tool versions, seeded, so it is the same every time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UserError
from runner.hashing import content_hash
from runner.models.cache import build_once
from runner.versions import version_of

PREFIX = "tiny:"
SEED = 1234
# Weights are drawn with this standard deviation instead of transformers' 0.02. With 0.02 the
# logits of a 256-wide random model stay within a few units of each other, so no LoRA can make
# one token likely, and a fine-tuned tiny model could never learn to stop. With 0.1 a LoRA on
# the attention and MLP projections fits a short answer and its end token within an epoch.
INIT_RANGE = 0.1
# Bump when the build code changes what it writes: they are part of the cache keys.
TOKENIZER_BUILD = 12  # distinct from every value BUILD_VERSION took when it keyed both
BUILD_VERSION = 7  # 7: tiny:deepseek-coder has a previous-token head


@dataclass(frozen=True)
class TinySpec:
    """How one tiny model is built. Every field is part of its cache key."""

    vocab: str  # llama.cpp models/ggml-vocab-<vocab>.gguf
    architecture: str  # the Hugging Face class name the converter dispatches on
    model_type: str
    # ("llama.cpp", file under models/templates) or ("recipe", name of a template in templates/)
    template: tuple[str, str]
    family: str  # what the real model is, for the model card and error messages
    config: dict[str, Any] = field(default_factory=dict)
    # Layer 0's first head attends to the previous token (see _previous_token_head).
    previous_token_head: bool = False


TINY_MODELS: dict[str, TinySpec] = {
    "qwen2": TinySpec(
        vocab="qwen2",
        architecture="Qwen2ForCausalLM",
        model_type="qwen2",
        template=("llama.cpp", "Qwen-Qwen2.5-7B-Instruct.jinja"),
        family="Qwen2 / Qwen2.5-Coder",
        config={
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": True,
            "use_sliding_window": False,
        },
    ),
    "llama": TinySpec(
        vocab="llama-spm",
        architecture="LlamaForCausalLM",
        model_type="llama",
        template=("recipe", "llama2"),
        family="Llama-2 / CodeLlama",
        config={
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False,
        },
    ),
    "deepseek-coder": TinySpec(
        vocab="deepseek-coder",
        architecture="LlamaForCausalLM",
        model_type="llama",
        template=("recipe", "deepseek-coder"),
        family="DeepSeek-Coder",
        config={
            "hidden_size": 256,
            "intermediate_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 16384,
            # The real model's theta, without its linear RoPE scaling (factor 4): positions
            # divided by 4 turn the fastest rotation 0.25 rad a token, too slow for a head to
            # single out the previous token (its score would stand out by 0.8 % of itself).
            "rope_theta": 100000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
        },
        # Every DeepSeek-Coder turn ends "\n<|EOT|>", and answers often end with a closing
        # fence: whether a newline ends the turn depends on the token before it.
        previous_token_head=True,
    ),
}


def is_tiny(base: str | Path) -> bool:
    return isinstance(base, str) and base.startswith(PREFIX)


def tiny_spec(base: str) -> TinySpec:
    name = base[len(PREFIX) :]
    if name not in TINY_MODELS:
        from runner.registry import did_you_mean

        known = ", ".join(PREFIX + n for n in TINY_MODELS)
        raise UserError(
            f"model.base: '{base}' is not a built-in tiny model{did_you_mean(PREFIX + name, [PREFIX + n for n in TINY_MODELS])} (known: {known})"
        )
    return TINY_MODELS[name]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def family_template(spec: TinySpec) -> str:
    """The family's real chat template text."""
    source, name = spec.template
    if source == "llama.cpp":
        from runner.llamacpp import template_file

        return template_file(name).read_text(encoding="utf-8")
    # llama.cpp ships no Llama-2 or DeepSeek-Coder template file: use the runner's own.
    from runner.prompt.template import load_template

    return load_template(name).source


def _tool_versions() -> dict[str, str]:
    return {p: version_of(p) for p in ("transformers", "tokenizers", "torch")}


def tokenizer_dir(spec: TinySpec) -> Path:
    """The family's tokenizer converted from llama.cpp's vocab GGUF by ``transformers`` (cached).

    Slow (about 80 s for Qwen2's 151k tokens), so it is cached apart from the model.
    """
    from runner.llamacpp import vocab_gguf

    vocab = vocab_gguf(spec.vocab)
    key = _tokenizer_key(vocab)

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(vocab.parent), gguf_file=vocab.name)
        _apply_gguf_special_tokens(tokenizer, vocab)
        _add_gguf_added_tokens(tokenizer, vocab)
        _make_byte_level(tokenizer)
        tokenizer.save_pretrained(str(tmp))

    return build_once("tokenizers", spec.vocab, key, build)


def _make_byte_level(tokenizer: Any) -> None:
    """Give a byte-level BPE (DeepSeek-Coder) the model and decoder its real tokenizer.json has.

    transformers' GGUF reader builds every ``llama`` vocab as SentencePiece-style BPE: byte
    fallback on and a ``ByteFallback``/``Replace``/``ByteLevel`` decoder chain. For a byte-level
    vocab that hybrid tokenizes the same, but llama.cpp's converter (gguf-py ``LlamaHfVocab``)
    takes it for a SentencePiece vocab and writes ``tokenizer.ggml.model: llama``, whose
    tokenizer aborts on the first byte it looks up (``llama_vocab::byte_to_token``:
    ``unordered_map::at``). Every byte has a token in a byte-level vocab, so byte fallback
    never fires and turning it off changes no id.

    Its plain added tokens (DeepSeek-Coder's ``õ``, ``÷``... for bytes its BPE lacks) are marked
    ``normalized`` as in the real tokenizer: the converter decodes each non-normalized added
    token back through the tokenizer, which turns those into one '\ufffd' each, and llama.cpp
    refuses a vocab with duplicate tokens (``id_to_token.size() == token_to_id.size()``).
    """
    from tokenizers import AddedToken, decoders

    backend = tokenizer.backend_tokenizer
    if type(backend.pre_tokenizer).__name__ != "ByteLevel":
        return
    backend.model.byte_fallback = False
    backend.decoder = decoders.ByteLevel()
    plain = [t for _, t in sorted(tokenizer.added_tokens_decoder.items()) if not t.special]
    tokenizer.add_tokens([AddedToken(t.content, special=False, normalized=True) for t in plain])


def _tokenizer_key(vocab: Path) -> str:
    return content_hash(
        {
            "build": TOKENIZER_BUILD,
            "vocab_sha256": _file_sha256(vocab),
            "versions": _tool_versions(),
        }
    )


def gguf_special_ids(vocab: Path) -> dict[str, Any]:
    """Special token ids (``bos``, ``eos``, ``unknown``, ``padding``) and BOS/EOS flags of a GGUF."""
    from runner.llamacpp.header import GGUFHeader

    found: dict[str, Any] = {}
    with GGUFHeader(vocab) as header:
        for role in ("bos", "eos", "unknown", "padding"):
            value = header.get(f"tokenizer.ggml.{role}_token_id")
            if value is not None:
                found[role] = int(value)
        for flag in ("add_bos_token", "add_eos_token"):
            value = header.get(f"tokenizer.ggml.{flag}")
            if value is not None:
                found[flag] = bool(value)
    return found


def _apply_gguf_special_tokens(tokenizer: Any, vocab: Path) -> None:
    """Set eos/pad/unk, and bos where the family uses one, as the GGUF declares them.

    transformers' GGUF reader gets the Llama (SPM) special tokens wrong: it reads the eos token
    from ``bos_token_id`` and then swaps bos and eos (transformers/integrations/ggml.py,
    ``GGUFLlamaConverter``), which leaves ``<s>`` as eos. The GGUF's own ids are the truth.
    A family that never inserts a BOS (Qwen2) keeps the tokenizer's ``bos_token`` unset, as
    its real tokenizer does.
    """
    ids = gguf_special_ids(vocab)
    roles = {"eos": "eos_token", "unknown": "unk_token", "padding": "pad_token"}
    if ids.get("add_bos_token"):
        roles["bos"] = "bos_token"
    for role, attr in roles.items():
        if role in ids:
            setattr(tokenizer, attr, tokenizer.convert_ids_to_tokens(ids[role]))
    for flag in ("add_bos_token", "add_eos_token"):
        if flag in ids and hasattr(tokenizer, "update_post_processor"):
            setattr(tokenizer, flag, ids[flag])


_LOOKS_SPECIAL = re.compile(r"^<[|｜].*[|｜]>$")
_FILLER = re.compile(r"^\[PAD\d+\]$")


def _add_gguf_added_tokens(tokenizer: Any, vocab: Path) -> None:
    """Make the GGUF's control and user-defined tokens atomic, as in the family's tokenizer.

    transformers' GGUF reader keeps only some of them as added tokens: DeepSeek-Coder's
    ``<|EOT|>`` (a user-defined token in the GGUF, which llama.cpp never splits) came out as six
    ordinary pieces. Tokens shaped like ``<|...|>`` are marked special, as their models mark them;
    the converter's ``[PAD<n>]`` vocabulary fillers are left alone.
    """
    import gguf
    from tokenizers import AddedToken

    from runner.llamacpp.header import GGUFHeader

    wanted = (gguf.TokenType.CONTROL, gguf.TokenType.USER_DEFINED)
    with GGUFHeader(vocab) as header:  # ggml's reader: gguf-py takes 10 s on Qwen's vocabulary
        types = header.get("tokenizer.ggml.token_type")
        listed = [i for i, kind in enumerate(types) if kind in wanted]
        texts = {i: header.item("tokenizer.ggml.tokens", i) for i in listed}
    known = set(tokenizer.get_added_vocab())
    added = []
    for i in listed:
        kind, text = types[i], texts[i]
        if text in known or _FILLER.match(text):
            continue
        special = kind == gguf.TokenType.CONTROL or bool(_LOOKS_SPECIAL.match(text))
        added.append((i, AddedToken(text, special=special, normalized=False)))
    if added:
        tokenizer.add_tokens([token for _, token in added])
    moved = [(i, t.content) for i, t in added if tokenizer.convert_tokens_to_ids(t.content) != i]
    if moved:
        raise RuntimeError(f"added tokens did not keep their GGUF ids: {moved[:5]}")


def build_tiny(base: str) -> Path:
    """Build (once) and return the folder of a built-in tiny model: config, weights, tokenizer."""
    spec = tiny_spec(base)
    template = family_template(spec)
    tok_dir = tokenizer_dir(spec)
    key = _model_key(spec, template, tok_dir.name)

    def build(tmp: Path) -> None:
        _build_model(spec, template, tok_dir, tmp)

    return build_once("models", spec_name(base), key, build)


def _model_key(spec: TinySpec, template: str, tokenizer_name: str) -> str:
    return content_hash(
        {
            "build": BUILD_VERSION,
            "spec": asdict(spec),
            "seed": SEED,
            "init_range": INIT_RANGE,
            "template": template,
            "tokenizer": tokenizer_name,
            "versions": _tool_versions(),
        }
    )


def tiny_build_key(base: str) -> str:
    """The cache key ``build_tiny(base)`` builds under, computed without building anything.

    Stage keys include it, so a rebuilt tiny model (new build code, tokenizer or library
    version) is trained again instead of reusing an adapter made for the old one.
    """
    from runner.llamacpp import vocab_gguf

    spec = tiny_spec(base)
    vocab = vocab_gguf(spec.vocab)
    tokenizer_name = f"{spec.vocab}-{_tokenizer_key(vocab)[:16]}"  # as build_once names it
    return _model_key(spec, family_template(spec), tokenizer_name)


def spec_name(base: str) -> str:
    return "tiny-" + base[len(PREFIX) :]


def _build_model(spec: TinySpec, template: str, tok_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from runner.llamacpp import vocab_gguf

    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(out))  # writes chat_template.jinja next to the tokenizer

    # config.json carries the ids the family's real config.json has (the GGUF was made from it).
    ids = gguf_special_ids(vocab_gguf(spec.vocab))
    config = AutoConfig.for_model(
        spec.model_type,
        vocab_size=len(tokenizer),
        bos_token_id=ids.get("bos"),
        eos_token_id=ids.get("eos"),
        pad_token_id=ids.get("padding"),
        architectures=[spec.architecture],
        torch_dtype="bfloat16",
        initializer_range=INIT_RANGE,
        **spec.config,
    )
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config)
    # The embedding initializer zeroes the padding row (nn.Embedding's padding_idx). With tied
    # embeddings that row is also the token's output row, so its logit stays 0 whatever the
    # model computes: a LoRA can never teach the model to emit it. The pad token is often the
    # end of a turn (Qwen2's <|endoftext|>, which the zephyr template ends turns with), and a
    # trained model has learned every row: give it a random one like the others.
    if config.pad_token_id is not None:
        with torch.no_grad():
            embeddings = model.get_input_embeddings().weight
            embeddings[config.pad_token_id].normal_(0.0, INIT_RANGE)
    if spec.previous_token_head:
        _previous_token_head(model, config)
    model.to(torch.bfloat16).save_pretrained(str(out), safe_serialization=True)
    (out / "tiny.json").write_text(
        json.dumps(
            {
                "note": "randomly initialised test model with a real tokenizer; not a trained model",
                "family": spec.family,
                "seed": SEED,
                "spec": asdict(spec),
                "parameters": sum(p.numel() for p in model.parameters()),
            },
            indent=2,
        )
        + "\n"
    )


# The previous-token head: the embeddings' first dimension is this constant for every token,
# the head's query and key read only that dimension, and its score for the token `d` places back
# is PEAK * mean(cos((d - 1) * theta_j)) over the TOP fastest RoPE frequencies theta_j: PEAK at
# d = 1, and with DeepSeek's theta (1e5) at least 0.115 * PEAK = 10.3 less everywhere else up to
# 16,384 tokens back (0.10-0.13 * PEAK for a theta of 1e4-1e6).
PREVIOUS_TOKEN_CONSTANT = 0.5
PREVIOUS_TOKEN_TOP = 8
PREVIOUS_TOKEN_PEAK = 90.0


def _previous_token_head(model: Any, config: Any) -> None:
    """Make layer 0's first attention head attend to the previous token (weight > 0.999).

    Trained language models have such heads in their first layers; a random one has none, and a
    LoRA does not grow one in a laptop's 80 steps. Without it the model cannot learn a rule
    that hangs on the token before, such as DeepSeek-Coder's newline that ends a turn after a
    closing fence but not before it (the newline is its own token): the tiny model put <|EOT|>
    second there, p 0.29 against 0.59 for another fence; with the head, first, p 0.94-0.98.

    The head is position alone: its query and key are the same for every token, read from an
    embedding dimension that is constant, and RoPE turns them into a score that depends on the
    distance only. Every embedding row gets the same norm, so RMSNorm scales that dimension
    alike for every token and the scores cannot drift from token to token. The value and
    output projections stay random: what the head carries is the previous token's embedding.
    """
    import math

    import torch

    hidden = config.hidden_size
    head_dim = hidden // config.num_attention_heads
    half = head_dim // 2
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        rest = embeddings[:, 1:]
        rest.mul_(INIT_RANGE * math.sqrt(hidden - 1) / rest.norm(dim=1, keepdim=True))
        embeddings[:, 0] = PREVIOUS_TOKEN_CONSTANT
        # What RMSNorm makes of the constant (the norm's own weights are ones at build).
        rms = math.sqrt((PREVIOUS_TOKEN_CONSTANT**2 + INIT_RANGE**2 * (hidden - 1)) / hidden)
        constant = PREVIOUS_TOKEN_CONSTANT / rms
        # Query pair j rotated back by one token's angle: with Hugging Face's rotate_half RoPE,
        # pair j scores amp^2 * cos((d - 1) * theta_j) for a key d tokens back.
        amp = math.sqrt(PREVIOUS_TOKEN_PEAK * math.sqrt(head_dim) / PREVIOUS_TOKEN_TOP)
        theta = _rope_theta(config)
        query = torch.zeros(head_dim)
        key = torch.zeros(head_dim)
        for j in range(PREVIOUS_TOKEN_TOP):
            angle = theta ** (-2 * j / head_dim)
            query[j], query[j + half] = amp * math.cos(angle), -amp * math.sin(angle)
            key[j] = amp
        # Query head 0 and key head 0 (with grouped keys, its group's other queries read it too).
        attention = model.model.layers[0].self_attn
        for projection, vector in ((attention.q_proj, query), (attention.k_proj, key)):
            projection.weight[:head_dim] = 0
            projection.weight[:head_dim, 0] = vector / constant


def _rope_theta(config: Any) -> float:
    """RoPE's base, from ``rope_parameters`` (transformers 5) or ``rope_theta`` (4.x); the head
    is drawn for unscaled positions, so a spec with RoPE scaling cannot have it."""
    parameters = getattr(config, "rope_parameters", None) or {}
    if parameters.get("rope_type", "default") != "default":
        raise ValueError(f"a previous-token head needs unscaled RoPE, not {parameters}")
    return float(parameters.get("rope_theta") or getattr(config, "rope_theta", 10000.0))
