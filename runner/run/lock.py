"""``run.lock.json``: everything needed to know what a run was made from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.run.keys import StageKeys, versions

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


def base_model_identity(recipe: Recipe, inputs: dict[str, str]) -> dict[str, Any]:
    """The base model as a reference, its revision, and its content hash when it is a folder."""
    base = recipe.model.base
    identity: dict[str, Any] = {"ref": base, "revision": recipe.model.revision}
    if isinstance(base, str) and base.startswith("tiny:"):
        identity["kind"] = "tiny (built locally from a real tokenizer, random weights)"
    elif base in inputs:
        identity["kind"] = "local folder"
        identity["content_hash"] = inputs[base]
    else:
        identity["kind"] = "hugging face hub id"
    return identity


def llama_cpp_versions() -> dict[str, str]:
    """The converter tree's gguf-py version next to llama-cpp-python's (cheap: reads a file)."""
    try:
        from runner.llamacpp import versions as llama_versions
    except ImportError:
        return {}
    return {f"llama.cpp {k}": v for k, v in llama_versions().items() if k != "llama-cpp-python"}


def build_lock(recipe: Recipe, stages: list[str], keys: StageKeys, run_hash: str) -> dict[str, Any]:
    return {
        "run": run_hash,
        "recipe_name": recipe.name,
        "recipe_file": str(recipe.path),
        "recipe_files": [str(p) for p in recipe.files],
        "recipe": recipe.to_dict(),
        "inputs": dict(sorted(keys.inputs.items())),
        "base_model": base_model_identity(recipe, keys.inputs),
        "seed": recipe.train.seed,
        "split_seed": recipe.split.seed,
        "versions": {**versions(), **llama_cpp_versions()},
        "stages": {name: keys.keys[name] for name in stages},
    }
