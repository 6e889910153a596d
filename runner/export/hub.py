"""Stage "hub": the model card and an upload folder, pushed with ``huggingface_hub`` when possible.

The folder is always prepared (``hub/upload/``: the chosen artifacts and ``README.md``), so
that it can be inspected or uploaded by hand. The upload itself runs only with a Hugging Face
token and network access; otherwise the stage says why not and prints the command to run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from runner.errors import StageError
from runner.export.card import render_card
from runner.recipe.model import Recipe
from runner.stage import StageContext

STAGE = "hub"


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


def collect_artifacts(recipe: Recipe, run_dir: Path, artifacts: list[str]) -> dict[str, list[Path]]:
    """The files of each chosen artifact, mapped to their path inside the upload folder."""
    chosen: dict[str, list[Path]] = {}
    if "adapter" in artifacts:
        chosen["adapter"] = _adapter_files(run_dir / "train")
    if "merged" in artifacts:
        merged = run_dir / "merged"
        chosen["merged"] = (
            sorted(p for p in merged.iterdir() if p.is_file()) if merged.is_dir() else []
        )
    if "gguf" in artifacts:
        chosen["gguf"] = sorted((run_dir / "gguf").glob("*.gguf"))
    if "modelfile" in artifacts:
        modelfile = run_dir / "ollama" / "Modelfile"
        chosen["modelfile"] = [modelfile] if modelfile.is_file() else []
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


def prepare_folder(recipe: Recipe, run_dir: Path, folder: Path, options: dict) -> list[str]:
    """Fill ``folder`` with the artifacts and the card; returns the relative paths written."""
    artifacts = list(options.get("artifacts", ("adapter", "gguf", "card")))
    written = []
    for name, files in collect_artifacts(recipe, run_dir, artifacts).items():
        for src in files:
            rel = Path(_PLACES[name]) / src.name
            _link_or_copy(src, folder / rel)
            written.append(rel.as_posix())
    if "card" in artifacts:
        card = render_card(recipe, run_dir, options.get("license"))
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


def run(recipe: Recipe, ctx: StageContext) -> dict[str, Any]:
    targets = recipe.exports("hub")
    if not targets:
        raise StageError(STAGE, "no `type: hub` target under export")
    options = dict(targets[0])
    repo_id = options["repo_id"]
    folder = ctx.out / "upload"
    folder.mkdir(parents=True, exist_ok=True)
    files = prepare_folder(recipe, ctx.run_dir, folder, options)
    command = f"hf upload {repo_id} {ctx.stage_dir(STAGE) / 'upload'} . --repo-type model"
    summary: dict[str, Any] = {
        "outputs": {"folder": str(ctx.stage_dir(STAGE) / "upload")},
        "repo_id": repo_id,
        "files": files,
        "uploaded": False,
    }
    token = hub_token()
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if token is None:
        summary["note"] = (
            f"no Hugging Face token (set HF_TOKEN or run `hf auth login`); the folder is "
            f"ready, upload it with: {command}"
        )
    elif offline or ctx.dry_run:
        why = "HF_HUB_OFFLINE is set" if offline else "dry run"
        summary["note"] = f"{why}: not uploading; the folder is ready, upload it with: {command}"
    else:
        try:
            summary.update(upload(folder, repo_id, bool(options.get("private", True)), token))
        except Exception as exc:  # any network or permission failure: the folder stays ready
            raise StageError(
                STAGE, f"upload to {repo_id} failed ({exc}); the folder is ready: {command}"
            ) from None
        summary["uploaded"] = True
    print(f"hub: {summary.get('note') or 'uploaded to ' + summary['url']}")
    (ctx.out / "hub.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
