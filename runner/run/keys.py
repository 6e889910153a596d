"""Stage cache keys: the recipe keys a stage reads + content of the files they name + tool
versions, chained with the keys of the upstream stages it reads (the dvc run-cache idea)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.hashing import HashCache, content_hash, input_paths
from runner.run.stages import SPECS, StageSpec
from runner.versions import version_of
from runner.versions import versions as all_versions

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

# Recorded in run.lock.json: what a run was made with.
LOCK_TOOLS = (
    "recipe-runner",
    "torch",
    "transformers",
    "axolotl",
    "peft",
    "accelerate",
    "datasets",
    "bitsandbytes",
    "llama-cpp-python",
    "gguf",
)


def versions(dists: tuple[str, ...] = LOCK_TOOLS) -> dict[str, str]:
    return all_versions(dists)


def stage_material(recipe: Recipe, spec: StageSpec) -> dict[str, Any]:
    """The recipe keys and export targets a stage reads, with their resolved values."""
    material: dict[str, Any] = {"reads": {key: recipe.section(key) for key in spec.reads}}
    parent = recipe.continue_from
    if parent is not None and any(k.split(".")[0] == "continue_from" for k in spec.reads):
        # The parent enters by what identifies its weights (a run's stage keys, a folder's
        # content), not by its path: its folder holds gigabytes and links to other folders.
        from runner.train.continue_from import parent_fingerprint

        material["reads"] = _replace(
            material["reads"], parent.run, f"parent:{parent_fingerprint(parent.run)}"
        )
    if spec.exports:
        exports = recipe.to_dict()["export"]
        material["exports"] = {t: [e for e in exports if e["type"] == t] for t in spec.exports}
    base = recipe.model.base
    if spec.base_build and base.startswith("tiny:"):
        # A local base folder enters by its files' content (below); a tiny one is built on this
        # machine, and a rebuild (new build code, tokenizer, library versions) changes its key.
        from runner.models.tiny import tiny_build_key

        material["base_build"] = tiny_build_key(base)
    elif spec.base_build and base.startswith("ollama:"):
        # An Ollama model enters by its GGUF blob's digest: `ollama pull` again changes it.
        from runner.errors import UserError
        from runner.models.ollama_store import find_model

        try:
            material["base_build"] = find_model(base).digest
        except UserError:
            material["base_build"] = None  # not pulled here: the run refuses it with the reason
    return material


def _replace(value: Any, old: str, new: str) -> Any:
    """``value`` with every string equal to ``old`` replaced by ``new``."""
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace(v, old, new) for v in value]
    return new if value == old else value


@dataclass
class StageKeys:
    """Keys of the enabled stages, and the input files that went into them."""

    keys: dict[str, str]
    inputs: dict[str, str] = field(default_factory=dict)  # path -> content hash

    def short(self, stage: str) -> str:
        return self.keys[stage][:12]


def compute_keys(
    recipe: Recipe, stages: list[str], cache_file: Path | None, *, save: bool = True
) -> StageKeys:
    """Key every enabled stage. Files named by the keys a stage reads are hashed by content;
    ``save=False`` reads the hash cache without writing it (``recipe plan`` writes nothing)."""
    hashes = HashCache(cache_file)
    keys: dict[str, str] = {}
    inputs: dict[str, str] = {}
    for name in stages:
        spec = SPECS[name]
        material = stage_material(recipe, spec)
        files = {str(path): hashes.path_hash(path) for path in input_paths(material)}
        inputs.update(files)
        keys[name] = content_hash(
            {
                "stage": name,
                "recipe": material,
                "files": files,
                "tools": {t: version_of(t) for t in (*spec.tools, "recipe-runner")},
                "upstream": {d: keys[d] for d in spec.after if d in keys},
            }
        )
    if save:
        hashes.save()
    return StageKeys(keys=keys, inputs=inputs)
