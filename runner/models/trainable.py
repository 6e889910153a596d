"""Can Axolotl fine-tune this base? Answered from its config.json before anything runs.

Axolotl trains decoder-only causal language models (``AutoModelForCausalLM``). An
encoder-decoder base (T5, BART, the seq2seq models some agent-log pipelines start from) or an
encoder-only one (BERT-style masked LMs) fails deep inside training, after the data stage ran;
here it is refused with the reason. The list of causal architectures is read from the installed
transformers' own ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` (parsed with ``ast``: importing
transformers' auto-model module costs seconds, and ``recipe validate`` must stay fast).
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

_CAUSAL_HEADS = ("ForCausalLM", "LMHeadModel")
# Heads that are never causal language models, whatever the model type.
_NOT_CAUSAL_HEADS = (
    "ForMaskedLM",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
    "ForNextSentencePrediction",
    "ForPreTraining",
    "ForSpeechSeq2Seq",
    "ForCTC",
    "ForImageClassification",
)


@lru_cache(maxsize=1)
def causal_model_types() -> frozenset[str] | None:
    """``model_type`` values transformers has a causal-LM class for (None if unreadable)."""
    spec = find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(spec.submodule_search_locations[0]) / "models" / "auto" / "modeling_auto.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if isinstance(target, ast.Name) and target.id == "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES":
            call = node.value
            if isinstance(call, ast.Call) and call.args:
                try:
                    pairs = ast.literal_eval(call.args[0])
                except ValueError:
                    return None
                return frozenset(name for name, _ in pairs)
    return None


def config_reason(config: dict[str, Any], where: str) -> str | None:
    """Why a model with this ``config.json`` cannot be fine-tuned by Axolotl, or None."""
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    model_type = config.get("model_type")
    named = f"{', '.join(architectures) or 'unknown architecture'}, model_type {model_type!r}"
    advice = (
        "Axolotl fine-tunes decoder-only causal language models (…ForCausalLM); choose a "
        "causal base such as Qwen/Qwen2.5-Coder-1.5B-Instruct"
    )
    if config.get("is_encoder_decoder"):
        return f"{where} is an encoder-decoder model ({named}); {advice}"
    if any(a.endswith(_CAUSAL_HEADS) for a in architectures):
        return None  # a causal head, also one of a model's own code (trust_remote_code)
    if architectures and all(a.endswith(_NOT_CAUSAL_HEADS) for a in architectures):
        return f"{where} is not a causal language model ({named}); {advice}"
    causal = causal_model_types()
    if (
        not architectures
        and causal is not None
        and isinstance(model_type, str)
        and model_type not in causal
    ):
        return f"{where} has no causal language-model class in transformers ({named}); {advice}"
    return None


def folder_reason(folder: Path) -> str | None:
    """``config_reason`` of a local model folder (None when it has no readable config.json)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    return config_reason(config, str(folder))


def untrainable_reason(base: str) -> str | None:
    """At validate time: the reason a local base folder cannot be trained, else None (a hub id is
    checked when the run resolves it)."""
    from runner.models.tiny import is_tiny

    if is_tiny(base):
        return None
    try:
        folder = Path(base).expanduser()
        if not folder.is_dir():
            return None
    except (OSError, ValueError):
        return None
    return folder_reason(folder)
