"""Will llama.cpp's pinned converter accept this base model? Answered before any training.

Conversion fails late and expensively when the architecture is unknown to the converter or its
BPE pre-tokenizer is not recognised (llama.cpp#9673, #8649). Both are decided by data in the
converter's own source, so this module reads that source (with ``ast`` and a regular
expression, never importing it: no torch at validate time) and the base's ``config.json`` and
``tokenizer.json``.
"""

from __future__ import annotations

import ast
import json
import re
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

from runner.errors import UserError
from runner.models.tiny import is_tiny, tiny_spec


@lru_cache(maxsize=1)
def supported_architectures() -> frozenset[str]:
    """Architecture names the pinned converter handles (``TEXT_MODEL_MAP`` in its source)."""
    from runner.llamacpp import llama_cpp_dir

    tree = ast.parse((llama_cpp_dir() / "conversion" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP" and node.value:
            return frozenset(ast.literal_eval(node.value))
    raise UserError("cannot find TEXT_MODEL_MAP in llama.cpp's conversion/__init__.py")


@lru_cache(maxsize=1)
def _pre_tokenizer_check() -> tuple[str, frozenset[str]]:
    """The converter's test text and the hashes of the pre-tokenizers it recognises."""
    from runner.llamacpp import llama_cpp_dir

    source = (llama_cpp_dir() / "conversion" / "base.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    chktxt = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "get_vocab_base_pre":
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == "chktxt"
                ):
                    chktxt = ast.literal_eval(stmt.value)
    if chktxt is None:
        raise UserError(
            "cannot find get_vocab_base_pre's test text in llama.cpp's conversion/base.py"
        )
    hashes = frozenset(re.findall(r'chkhsh == "([0-9a-f]{64})"', source))
    return chktxt, hashes


def pre_tokenizer_hash(tokenizer_json: Path) -> str:
    """The converter's fingerprint of a fast tokenizer: sha256 of the ids of its test text."""
    from tokenizers import Tokenizer

    chktxt, _ = _pre_tokenizer_check()
    ids = Tokenizer.from_file(str(tokenizer_json)).encode(chktxt).ids
    return sha256(str(ids).encode()).hexdigest()


def check_convertible(base: str | Path) -> list[str]:
    """Warnings (empty when fine) about converting ``model.base`` with the pinned converter."""
    from runner.models.gguf_base import is_gguf_base

    if is_gguf_base(base):
        return []  # already a GGUF: only its adapter is converted, and nothing is merged
    if is_tiny(base):
        try:
            spec = tiny_spec(str(base))
        except UserError:
            return []  # an unknown tiny name is an error of its own (recipe rule tiny_family_known)
        try:
            supported = spec.architecture in supported_architectures()
        except UserError as exc:
            return [f"cannot check GGUF conversion: {exc}"]
        return [] if supported else [f"the pinned converter lacks {spec.architecture}"]
    try:
        from runner.models.resolve import resolve_base

        folder = resolve_base(base)
    except UserError as exc:
        return [f"cannot check GGUF conversion yet: {exc}"]
    try:
        return check_folder(folder)
    except UserError as exc:
        return [f"cannot check GGUF conversion: {exc}"]


def check_folder(folder: Path) -> list[str]:
    """The checks of :func:`check_convertible` on a model folder."""
    warnings: list[str] = []
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    arch = (config.get("architectures") or [None])[0]
    if arch is None:
        warnings.append(f"{folder}/config.json names no architecture; the converter needs one")
    elif arch not in supported_architectures():
        warnings.append(
            f"llama.cpp's pinned converter does not support the architecture {arch}; "
            "GGUF export will fail (choose a supported base or drop the gguf export)"
        )
    tokenizer_json = folder / "tokenizer.json"
    has_spm = (folder / "tokenizer.model").is_file()
    if tokenizer_json.is_file():
        data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        # A BPE with byte fallback and a Sequence decoder is a SentencePiece vocabulary saved
        # as tokenizer.json: the converter reads it as such (gguf-py's LlamaHfVocab) and does
        # not fingerprint its pre-tokenizer. Only byte-level BPEs are fingerprinted.
        spm_like = bool(data["model"].get("byte_fallback")) and (
            (data.get("decoder") or {}).get("type") == "Sequence"
        )
        if data["model"].get("type") == "BPE" and not has_spm and not spm_like:
            _, known = _pre_tokenizer_check()
            fingerprint = pre_tokenizer_hash(tokenizer_json)
            if fingerprint not in known:
                warnings.append(
                    "llama.cpp's pinned converter does not recognise this tokenizer's BPE "
                    f"pre-tokenizer (chkhsh {fingerprint[:12]}...); GGUF export will fail "
                    "(see ggml-org/llama.cpp#8649)"
                )
    elif not has_spm:
        warnings.append(
            f"{folder} has neither tokenizer.json nor tokenizer.model; the converter needs one"
        )
    return warnings
