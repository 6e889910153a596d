"""Fill-in-the-middle: the base tokenizer's own FIM tokens, the training text they make, and the
Ollama TEMPLATE branch that writes the same text for a request with a suffix.

Code models are pretrained on infill in a format of their family (Bavarian et al. 2022,
"Efficient Training of Language Models to Fill in the Middle"): the text before the hole
(prefix), the text after it (suffix) and the hole (middle), separated by three tokens the
tokenizer holds. The format is read from the tokenizer's vocabulary, never assumed from the
model's name: Qwen2.5-Coder (and CodeGemma) write ``<|fim_prefix|>``, StarCoder ``<fim_prefix>``,
DeepSeek-Coder ``<｜fim▁begin｜>``/``<｜fim▁hole｜>``/``<｜fim▁end｜>``, CodeLlama ``▁<PRE>``...
A tokenizer without such tokens (Qwen2's own vocabulary, the built-in ``tiny:qwen2``) cannot
learn infill in a format any editor or Ollama would send, and a recipe asking for it is refused.

Two orders: ``psm`` (prefix, suffix, middle: what Ollama's code-model templates send) and
``spm`` (suffix first). Training rows end with the tokenizer's end-of-sequence token, which
Axolotl's ``completion`` type appends; the Modelfile's ``{{ .Suffix }}`` branch
(``ollama_suffix_branch``) renders the very prompt of training (Ollama's
``template.Execute`` passes only ``.Prompt`` and ``.Suffix`` when a request has a suffix).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from runner.errors import UserError

Mode = Literal["psm", "spm"]
# Written by the data stage and kept by the train stage: the format the model was trained in.
FIM_ARTIFACT = "fim.json"


@dataclass(frozen=True)
class FimFormat:
    """One family's infill format: the marker texts as written in training text, and the
    vocabulary tokens that must exist for them to be single tokens."""

    family: str
    prefix: str
    suffix: str
    middle: str
    vocab: tuple[str, str, str]  # the tokens the vocabulary holds for the three markers
    mode: Mode = "psm"

    def prompt(self, before: str, after: str) -> str:
        """The infill prompt for the hole between ``before`` and ``after``; the model writes
        the middle next."""
        if self.mode == "psm":
            return f"{self.prefix}{before}{self.suffix}{after}{self.middle}"
        return f"{self.suffix}{after}{self.prefix}{before}{self.middle}"

    def split_prompt(self, prompt: str) -> tuple[str, str]:
        """``(before, after)`` back from a prompt written by :meth:`prompt`."""
        body = prompt.removesuffix(self.middle)
        if self.mode == "psm":
            before, _, after = body.removeprefix(self.prefix).partition(self.suffix)
        else:
            after, _, before = body.removeprefix(self.suffix).partition(self.prefix)
        return before, after

    def with_mode(self, mode: Mode) -> FimFormat:
        return FimFormat(self.family, self.prefix, self.suffix, self.middle, self.vocab, mode)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "vocab": list(self.vocab)}


# Known families, by the tokens their vocabularies hold. Order matters only for a vocabulary
# holding two families' tokens (none known).
FAMILIES = (
    FimFormat(
        "qwen2.5-coder",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ),
    FimFormat(
        "starcoder",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ),
    FimFormat(
        "deepseek-coder",
        "<\uff5cfim\u2581begin\uff5c>",
        "<\uff5cfim\u2581hole\uff5c>",
        "<\uff5cfim\u2581end\uff5c>",
        (
            "<\uff5cfim\u2581begin\uff5c>",
            "<\uff5cfim\u2581hole\uff5c>",
            "<\uff5cfim\u2581end\uff5c>",
        ),
    ),
    # CodeLlama's SentencePiece pieces carry the word-start mark; its infill text is
    # "<PRE> {prefix} <SUF>{suffix} <MID>" (Ollama's codellama template writes the same).
    FimFormat(
        "codellama",
        "<PRE> ",
        " <SUF>",
        " <MID>",
        ("\u2581<PRE>", "\u2581<SUF>", "\u2581<MID>"),
    ),
)


def fim_format(vocabulary: Collection[str], mode: Mode = "psm") -> FimFormat | None:
    """The infill format whose three tokens ``vocabulary`` holds, in ``mode``; None when none."""
    for family in FAMILIES:
        if all(token in vocabulary for token in family.vocab):
            return family.with_mode(mode)
    return None


def no_fim_reason(vocabulary: Collection[str], what: str) -> str:
    """Why ``what`` cannot train fill-in-the-middle, naming the formats looked for."""
    known = "; ".join(f"{f.family}: {', '.join(f.vocab)}" for f in FAMILIES)
    return (
        f"{what} has no fill-in-the-middle tokens ({len(vocabulary)} tokens, none of the known "
        f"formats: {known}); fill_in_middle needs a code model's tokenizer (Qwen2.5-Coder, "
        "DeepSeek-Coder, CodeLlama, StarCoder; tiny:deepseek-coder on a laptop)"
    )


def tokenizer_vocabulary(tokenizer: Any) -> set[str]:
    """Every token text of a ``tokenizers.Tokenizer`` or a transformers tokenizer, added tokens
    included."""
    try:
        return set(tokenizer.get_vocab(with_added_tokens=True))
    except TypeError:  # transformers' get_vocab() has no argument and includes added tokens
        return set(tokenizer.get_vocab())


def folder_vocabulary(folder: Path) -> set[str]:
    """The token texts of a model folder's tokenizer, read from its JSON files (no transformers
    import: ``recipe validate`` stays fast)."""
    found: set[str] = set()
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file():
        data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        vocab = (data.get("model") or {}).get("vocab") or {}
        if isinstance(vocab, dict):
            found.update(vocab)
        elif isinstance(vocab, list):  # Unigram: [[piece, score], ...]
            found.update(str(item[0]) for item in vocab if item)
        found.update(str(t.get("content")) for t in data.get("added_tokens") or [])
    config = folder / "tokenizer_config.json"
    if config.is_file():
        added = json.loads(config.read_text(encoding="utf-8")).get("added_tokens_decoder") or {}
        found.update(str(t.get("content")) for t in added.values() if isinstance(t, dict))
    return found


def base_fim_problem(base: str, revision: str | None = None) -> tuple[str | None, bool]:
    """``(problem, certain)`` about training fill-in-the-middle on ``model.base``: ``(None,
    True)`` when its tokenizer has FIM tokens; ``(reason, True)`` when it has none; ``(reason,
    False)`` when the tokenizer cannot be read yet (a hub id not in the local cache)."""
    from runner.models.tiny import is_tiny, tiny_spec, tokenizer_dir

    try:
        if is_tiny(base):
            folder = tokenizer_dir(tiny_spec(base))
        else:
            from runner.models.resolve import resolve_base

            folder = resolve_base(base, revision)
    except UserError as exc:
        return f"cannot check its fill-in-the-middle tokens yet: {exc}", False
    vocabulary = folder_vocabulary(folder)
    if fim_format(vocabulary) is not None:
        return None, True
    return no_fim_reason(vocabulary, f"model.base '{base}'"), True


def save_fim(fim: FimFormat, folder: Path) -> Path:
    path = folder / FIM_ARTIFACT
    path.write_text(json.dumps(fim.to_json(), indent=2, ensure_ascii=False) + "\n", "utf-8")
    return path


def read_fim(folder: Path | None) -> FimFormat | None:
    """The format a stage folder's ``fim.json`` records, or None when it has none."""
    if folder is None or not (folder / FIM_ARTIFACT).is_file():
        return None
    data = json.loads((folder / FIM_ARTIFACT).read_text(encoding="utf-8"))
    return FimFormat(
        data["family"],
        data["prefix"],
        data["suffix"],
        data["middle"],
        tuple(data["vocab"]),
        data["mode"],
    )


# -- Ollama ------------------------------------------------------------------------------------
def ollama_suffix_branch(fim: FimFormat, template_text: str) -> str:
    """``template_text`` (a generated TEMPLATE) behind a ``{{ .Suffix }}`` branch that writes
    ``fim``'s infill prompt, as Ollama's code models' templates do.

    Ollama executes a TEMPLATE with only ``.Prompt`` and ``.Suffix`` for a generate request with
    a suffix (and a non-empty prompt), so the branch must come first; every other request falls
    through to the chat form unchanged.
    """
    from runner.prompt.gotemplate import go_string

    q = go_string
    if fim.mode == "psm":
        branch = (
            f"{{{{ {q(fim.prefix)} }}}}{{{{ .Prompt }}}}{{{{ {q(fim.suffix)} }}}}"
            f"{{{{ .Suffix }}}}{{{{ {q(fim.middle)} }}}}"
        )
    else:
        branch = (
            f"{{{{ {q(fim.suffix)} }}}}{{{{ .Suffix }}}}{{{{ {q(fim.prefix)} }}}}"
            f"{{{{ .Prompt }}}}{{{{ {q(fim.middle)} }}}}"
        )
    return f"{{{{- if .Suffix }}}}{branch}\n{{{{- else }}}}\n{template_text}\n{{{{- end }}}}"


def training_prefix(tokenizer: Any) -> str:
    """The BOS text when the tokenizer adds BOS to text (an infill row starts with it in
    training, and an infill prompt must too), else ''. Works with a transformers tokenizer and
    with ``runner.models.tokenizer_files.TokenizerFiles``."""
    bos = tokenizer.bos_token
    if not bos:
        return ""
    ids = tokenizer.encode("x", add_special_tokens=True)
    bos_ids = tokenizer.encode(bos, add_special_tokens=False)
    return bos if len(bos_ids) == 1 and ids and ids[0] == bos_ids[0] else ""
