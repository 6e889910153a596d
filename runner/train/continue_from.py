"""`continue_from:`: train from an earlier run's weights instead of the base's.

The parent is a run folder (``runs/<name>/<hash>``, ``runs/<name>/<version>``, or ``runs/<name>``
for its latest run), a LoRA adapter folder, or a merged (or fully fine-tuned) model folder.

- ``new_adapter`` (default): the parent merged onto its 16-bit base becomes the model a fresh LoRA
  is trained on, with this recipe's ``lora:``.
- ``same_adapter``: the parent's adapter keeps training (Axolotl's ``lora_model_dir``). Axolotl
  silently keeps the saved adapter's rank and targets when ``lora:`` says otherwise, so a
  ``lora:`` block that differs from the saved ``adapter_config.json`` is refused.
- ``full``: every weight of the merged parent is trained (``lora.enabled: false``).

The base model, tokenizer and chat template must be the parent's: continuing from weights trained
with another vocabulary or another turn format silently trains garbage, so the run is refused with
what differs. ``replay`` mixes a seeded share of the parent's training split into the new data
(``runner/data/sources/replay.py``). This is not resume: an interrupted run resumes from its own
checkpoint as any run does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from runner.errors import UserError
from runner.recipe.fields import RecipePath, Section, Seed

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


class ReplaySection(Section):
    """`continue_from.replay:`: keep some of what the parent learned in the new training data."""

    fraction: float = Field(gt=0, le=1)
    """Share of the parent's training split mixed into the new training split (0.2 = a fifth of
    it), chosen by a seeded sample; recorded in the data report."""
    seed: Seed = 42


class ContinueFromSection(Section):
    """`continue_from:`: start training from an earlier run (a new version of a model)."""

    run: RecipePath
    """The parent: a run folder (`runs/<name>/<version>`), a LoRA adapter folder, or a merged
    model folder; relative to the recipe file."""
    mode: Literal["new_adapter", "same_adapter", "full"] = "new_adapter"
    """`new_adapter`: a fresh LoRA on the merged parent; `same_adapter`: keep training the
    parent's adapter (the `lora:` block must match it); `full`: train every weight of the
    merged parent (`lora.enabled: false`)."""
    replay: ReplaySection | None = None
    """Mix a share of the parent's training split into this run's training split."""


RUN_LOCK = "run.lock.json"
LINEAGE = "lineage.json"
ADAPTER_CONFIG = "adapter_config.json"
TEMPLATE_FILE = "template.json"
# config.json fields that must agree for weights to be continued.
ARCHITECTURE = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _model_folder(folder: Path | None) -> Path | None:
    return folder if folder is not None and (folder / "config.json").is_file() else None


@dataclass
class Parent:
    """What a run continues from, found on disk."""

    path: Path  # the folder the recipe named (symlinks resolved)
    kind: str  # "run", "adapter" or "model"
    adapter_dir: Path | None = None  # a LoRA adapter (adapter_config.json)
    model_dir: Path | None = None  # a whole model: merged, or a full fine-tune's output
    tokenizer_dir: Path | None = None  # the tokenizer the parent was trained with
    train_dir: Path | None = None  # the parent run's train stage output
    data_dir: Path | None = None  # the parent run's data stage output (its splits)
    lock: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe(self) -> dict[str, Any]:
        return self.lock.get("recipe") or {}

    @property
    def name(self) -> str | None:
        return self.lock.get("recipe_name") or self.recipe.get("name")

    @property
    def version(self) -> str | None:
        return self.lineage.get("version") or self.recipe.get("version")

    @property
    def base_ref(self) -> str | None:
        """The parent's ``model.base`` as its recipe wrote it (run folders only)."""
        return (self.recipe.get("model") or {}).get("base")

    @property
    def base_folder(self) -> Path | None:
        """The base folder the adapter was trained on, when its adapter config records one."""
        if self.adapter_dir is None:
            return None
        recorded = _read_json(self.adapter_dir / ADAPTER_CONFIG).get("base_model_name_or_path")
        path = Path(recorded) if isinstance(recorded, str) and recorded else None
        return path if path is not None and path.is_dir() else None

    def train_split(self) -> Path | None:
        split = self.data_dir / "train.jsonl" if self.data_dir else None
        return split if split is not None and split.is_file() else None

    def test_split(self) -> Path | None:
        split = self.data_dir / "test.jsonl" if self.data_dir else None
        return split if split is not None and split.is_file() else None

    def template_source(self) -> str | None:
        """The chat template the parent was trained with."""
        for folder in (self.train_dir, self.adapter_dir, self.model_dir):
            if folder is None:
                continue
            saved = _read_json(folder / TEMPLATE_FILE).get("source")
            if isinstance(saved, str):
                return saved
            jinja = folder / "chat_template.jinja"
            if jinja.is_file():
                return jinja.read_text(encoding="utf-8")
        return None

    def describe(self) -> dict[str, Any]:
        """The parent as lineage.json records it."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "run": self.lock.get("run"),
            "recipe_hash": self.lineage.get("recipe_hash"),
            "stages": self.lock.get("stages"),
        }


def find_parent(target: str | Path) -> Parent:
    """The parent a ``continue_from.run`` names; a folder that is none of the three kinds is
    refused with what it lacks."""
    path = Path(target).expanduser()
    if not path.exists():
        raise UserError(
            f"continue_from.run: {target} does not exist (run the parent recipe first, or point "
            "at its run folder, adapter or merged model)"
        )
    if path.is_dir() and not (path / RUN_LOCK).is_file() and (path / "latest").is_dir():
        path = path / "latest"  # runs/<name>: its newest run
    path = path.resolve()
    if (path / RUN_LOCK).is_file():
        return _run_parent(path)
    if (path / ADAPTER_CONFIG).is_file():
        return Parent(path, "adapter", adapter_dir=path, tokenizer_dir=_tokenizer_dir(path))
    if (path / "config.json").is_file():
        return Parent(path, "model", model_dir=path, tokenizer_dir=_tokenizer_dir(path))
    raise UserError(
        f"continue_from.run: {target} is neither a run folder ({RUN_LOCK}), a LoRA adapter "
        f"({ADAPTER_CONFIG}) nor a model folder (config.json)"
    )


def _tokenizer_dir(folder: Path) -> Path | None:
    names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    return folder if any((folder / n).is_file() for n in names) else None


def _stage_folder(run: Path, name: str) -> Path | None:
    folder = run / name
    return folder.resolve() if folder.is_dir() else None


def _run_parent(run: Path) -> Parent:
    train = _stage_folder(run, "train")
    if train is None:
        raise UserError(
            f"continue_from.run: the run {run} has no finished train stage to continue from"
        )
    adapter = train if (train / ADAPTER_CONFIG).is_file() else None
    model = _model_folder(_stage_folder(run, "merged")) or _model_folder(train)
    if adapter is None and model is None:
        raise UserError(f"continue_from.run: {train} holds neither an adapter nor a model")
    return Parent(
        run,
        "run",
        adapter_dir=adapter,
        model_dir=model,
        tokenizer_dir=_tokenizer_dir(train) or (model and _tokenizer_dir(model)),
        train_dir=train,
        data_dir=_stage_folder(run, "data"),
        lock=_read_json(run / RUN_LOCK),
        lineage=_read_json(run / LINEAGE),
    )


def parent_fingerprint(target: str | Path) -> str:
    """What identifies the parent's weights in a stage key: a run by the keys of its stages
    (which are content hashes), a folder by the content of its files."""
    from runner.hashing import HashCache, content_hash

    try:
        parent = find_parent(target)
    except UserError:
        return f"missing:{target}"  # the run refuses it before any stage starts
    if parent.kind == "run":
        return content_hash({"run": parent.lock.get("stages")})
    return HashCache(None).path_hash(parent.path)


# -- the checks ---------------------------------------------------------------------------------
def lora_differences(lora: Any, adapter_dir: Path) -> list[str]:
    """How the recipe's ``lora:`` differs from the saved adapter (``same_adapter`` mode)."""
    saved = _read_json(adapter_dir / ADAPTER_CONFIG)
    differences = []
    pairs = (("r", "r", lora.r), ("alpha", "lora_alpha", lora.alpha))
    for key, saved_key, value in pairs:
        if saved.get(saved_key) is not None and saved[saved_key] != value:
            differences.append(
                f"lora.{key} is {value}, the parent's adapter has {saved[saved_key]}"
            )
    dropout = saved.get("lora_dropout")
    if dropout is not None and abs(float(dropout) - lora.dropout) > 1e-9:
        differences.append(f"lora.dropout is {lora.dropout}, the parent's adapter has {dropout}")
    targets = saved.get("target_modules")
    if lora.target_modules != "all_linear" and targets is not None:
        wanted, have = sorted(lora.target_modules), sorted(targets)
        if wanted != have:
            differences.append(f"lora.target_modules is {wanted}, the parent's adapter has {have}")
    return differences


def vocabulary_fingerprint(folder: Path) -> str | None:
    """A hash of a saved tokenizer's vocabulary: tokens and ids, merges and added tokens (not
    its padding or post-processing settings, which training may change)."""
    data = _read_json(folder / "tokenizer.json")
    digest = hashlib.sha256()
    if data:
        model = data.get("model") or {}
        added = [(t.get("id"), t.get("content")) for t in data.get("added_tokens") or []]
        part = {"vocab": model.get("vocab"), "merges": model.get("merges"), "added": added}
        digest.update(json.dumps(part, sort_keys=True).encode())
        return digest.hexdigest()
    spm = folder / "tokenizer.model"
    if spm.is_file():
        digest.update(spm.read_bytes())
        return digest.hexdigest()
    return None


def _first_difference(a: str, b: str) -> str:
    for number, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
        if x != y:
            return f"line {number}: {y.strip()[:60]!r} (parent) vs {x.strip()[:60]!r} (this recipe)"
    return "one is longer"


def identity_problems(
    recipe: Recipe, parent: Parent, base_dir: Path, template_source: str | None
) -> list[str]:
    """What differs between this recipe's base, tokenizer and template and the parent's."""
    problems = []
    base = recipe.model.base
    if parent.base_ref is not None and parent.base_ref != base:
        problems.append(f"model.base is {base}, the parent was trained on {parent.base_ref}")
    parent_revision = (parent.recipe.get("model") or {}).get("revision")
    if parent.kind == "run" and parent_revision != recipe.model.revision:
        problems.append(
            f"model.revision is {recipe.model.revision}, the parent's is {parent_revision}"
        )
    ours = _read_json(base_dir / "config.json")
    theirs_dir = parent.model_dir or parent.base_folder
    theirs = _read_json(theirs_dir / "config.json") if theirs_dir else {}
    if ours and theirs:
        differ = [
            f"{k} {ours.get(k)} vs {theirs.get(k)}"
            for k in ARCHITECTURE
            if k in ours and k in theirs and ours[k] != theirs[k]
        ]
        if differ:
            problems.append(
                "the base's architecture differs from the parent's: " + ", ".join(differ)
            )
    if parent.tokenizer_dir is not None:
        mine, parents = (
            vocabulary_fingerprint(base_dir),
            vocabulary_fingerprint(parent.tokenizer_dir),
        )
        if mine and parents and mine != parents:
            problems.append(
                f"the tokenizer of {base} ({base_dir}) differs from the one the parent was "
                f"trained with ({parent.tokenizer_dir}): its vocabulary or added tokens changed"
            )
    saved = parent.template_source()
    if (
        template_source is not None
        and saved is not None
        and saved.strip() != template_source.strip()
    ):
        problems.append(
            f"prompt.template renders differently from the parent's chat template "
            f"({_first_difference(template_source, saved)})"
        )
    return problems


def check_parent(recipe: Recipe, base_dir: Path, template_source: str | None) -> Parent:
    """The parent, once every refusal the mode implies has been checked (raises ``UserError``
    listing each difference)."""
    section = recipe.continue_from
    parent = find_parent(section.run)
    problems = identity_problems(recipe, parent, base_dir, template_source)
    if section.mode == "same_adapter":
        if parent.adapter_dir is None:
            problems.append(
                f"mode same_adapter keeps training the parent's LoRA adapter, and {parent.path} "
                "has none (a merged or fully fine-tuned model): use mode new_adapter or full"
            )
        else:
            problems += lora_differences(recipe.lora, parent.adapter_dir)
    if section.replay is not None and parent.train_split() is None:
        problems.append(
            f"continue_from.replay mixes in the parent's training split, and {parent.path} has "
            "none (replay needs a run folder of the parent)"
        )
    if problems:
        raise UserError(
            f"continue_from: cannot continue from {parent.path}:\n  - " + "\n  - ".join(problems)
        )
    return parent


# -- the starting model -------------------------------------------------------------------------
def merged_parent(parent: Parent, base_dir: Path) -> Path:
    """The parent as one 16-bit model folder: its merged model, or its adapter merged onto
    ``base_dir`` here (built once per parent in the user's cache)."""
    if parent.model_dir is not None:
        return parent.model_dir
    from runner.models.cache import build_once

    assert parent.adapter_dir is not None
    key = parent_fingerprint(parent.path)

    def build(tmp: Path) -> None:
        merge_adapter(base_dir, parent.adapter_dir, tmp)

    return build_once("parents", f"merged-{parent.path.name}", key, build)


def merge_adapter(base_dir: Path, adapter_dir: Path, out: Path) -> None:
    """Fold a LoRA adapter into its base with peft and save it with the adapter's tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from runner.export.merge import copy_tokenizer_files

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="auto")
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base_dir / name).is_file() and not (adapter_dir / name).is_file():
            shutil.copy2(base_dir / name, out / name)
    copy_tokenizer_files(adapter_dir, out)


@dataclass
class Start:
    """Where training starts: the model Axolotl loads and, for same_adapter, the adapter."""

    mode: str
    base_model: Path
    lora_model_dir: Path | None
    parent: Parent

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "base_model": str(self.base_model),
            "lora_model_dir": str(self.lora_model_dir) if self.lora_model_dir else None,
            "parent": self.parent.describe(),
        }


START_FILE = "start.json"


def starting_point(recipe: Recipe, base_dir: Path, template_source: str | None) -> Start:
    """Check the parent and say what the train stage loads."""
    parent = check_parent(recipe, base_dir, template_source)
    mode = recipe.continue_from.mode
    if mode == "same_adapter":
        return Start(mode, base_dir, parent.adapter_dir, parent)
    return Start(mode, merged_parent(parent, base_dir), None, parent)


def read_start(train_dir: Path) -> dict[str, Any]:
    """The train stage's record of where it started (empty for a run from the base)."""
    return _read_json(train_dir / START_FILE)
