"""Stage "hub": the model card and an upload folder, pushed with ``huggingface_hub`` when possible.

The folder is always prepared (``hub/upload/``: the chosen artifacts and ``README.md``), so
that it can be inspected or uploaded by hand. The upload itself runs only with a Hugging Face
token and network access; otherwise the stage says why not and prints the command to run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runner.errors import StageError
from runner.export import EXPORTS
from runner.export.card import render_card
from runner.recipe.fields import Operation
from runner.run.context import Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

STAGE = "hub"
# The finished folders of the stages the card and the upload read, by stage name.
Folders = Mapping[str, Path | None]


@EXPORTS.register
class HubExport(Operation):
    """A model card and an upload with huggingface_hub when a token is present."""

    type: Literal["hub"]
    repo_id: str
    """`user/name` on the Hugging Face Hub."""
    private: bool = True
    artifacts: tuple[Literal["adapter", "merged", "gguf", "modelfile", "card"], ...] = (
        "adapter",
        "gguf",
        "card",
    )
    """What is uploaded."""
    license: str | None = None
    """License for the card (defaults to model.license)."""


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link when possible: GGUF and merged weights can be gigabytes."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _adapter_files(train_dir: Path) -> list[Path]:
    keep = {"adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"}
    from runner.export.merge import TOKENIZER_FILES

    keep.update(TOKENIZER_FILES)
    return [p for p in sorted(train_dir.iterdir()) if p.name in keep]


def _files(folder: Path | None, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file()) if folder else []


def collect_artifacts(folders: Folders, artifacts: Sequence[str]) -> dict[str, list[Path]]:
    """The files of each chosen artifact, mapped to their path inside the upload folder."""
    chosen: dict[str, list[Path]] = {}
    if "adapter" in artifacts:
        train = folders.get("train")
        chosen["adapter"] = _adapter_files(train) if train else []
    if "merged" in artifacts:
        chosen["merged"] = [
            p for p in _files(folders.get("merge")) if p.name != "stage.manifest.json"
        ]
    if "gguf" in artifacts:
        chosen["gguf"] = _files(folders.get("gguf"), "*.gguf")
    if "modelfile" in artifacts:
        chosen["modelfile"] = _files(folders.get("ollama"), "Modelfile")
    missing = [name for name, files in chosen.items() if not files]
    if missing:
        raise StageError(
            STAGE,
            f"export.hub.artifacts lists {', '.join(missing)}, but this run produced none "
            "(add the matching export target, or drop it from artifacts)",
        )
    return chosen


# Where each artifact goes inside the repository: the adapter at the top (peft loads a repo
# root), the merged model in merged/, GGUF files and the Modelfile at the top.
_PLACES = {"adapter": "", "merged": "merged", "gguf": "", "modelfile": ""}


def prepare_folder(recipe: Recipe, folders: Folders, folder: Path, options: HubExport) -> list[str]:
    """Fill ``folder`` with the artifacts and the card; returns the relative paths written."""
    artifacts = options.artifacts
    written = []
    for name, files in collect_artifacts(folders, artifacts).items():
        for src in files:
            rel = Path(_PLACES[name]) / src.name
            _link_or_copy(src, folder / rel)
            written.append(rel.as_posix())
    if "card" in artifacts:
        card = render_card(recipe, folders, options.license)
        (folder / "README.md").write_text(card, encoding="utf-8")
        written.append("README.md")
    return sorted(written)


def hub_token() -> str | None:
    """A Hugging Face token from ``HF_TOKEN`` or ``huggingface-cli login``, if any."""
    from huggingface_hub import get_token

    return get_token()


def upload(folder: Path, repo_id: str, private: bool, token: str) -> dict[str, Any]:
    """Create the repository if needed and upload the folder as one commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload from recipe-runner",
    )
    return {"url": str(repo), "commit": getattr(commit, "oid", None)}


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    options = recipe.exports("hub")[0]
    repo_id = options.repo_id
    folder = ctx.out / "upload"
    folder.mkdir(parents=True, exist_ok=True)
    folders = {name: ctx.input(name) for name in ctx.inputs}
    files = prepare_folder(recipe, folders, folder, options)
    command = f"hf upload {repo_id} {ctx.run_dir / 'hub' / 'upload'} . --repo-type model"
    summary: dict[str, Any] = {"repo_id": repo_id, "files": files, "uploaded": False}
    token = hub_token()
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if token is None:
        summary["note"] = (
            f"no Hugging Face token (set HF_TOKEN or run `hf auth login`); the folder is "
            f"ready, upload it with: {command}"
        )
    elif offline:
        summary["note"] = (
            f"HF_HUB_OFFLINE is set: not uploading; the folder is ready, upload it with: {command}"
        )
    else:
        try:
            summary.update(upload(folder, repo_id, options.private, token))
        except Exception as exc:  # any network or permission failure: the folder stays ready
            raise StageError(
                STAGE, f"upload to {repo_id} failed ({exc}); the folder is ready: {command}"
            ) from None
        summary["uploaded"] = True
    (ctx.out / "hub.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    notes = [summary["note"]] if "note" in summary else [f"uploaded to {summary['url']}"]
    return Outcome(summary=summary, outputs={"folder": "upload", "record": "hub.json"}, notes=notes)
