"""`model.base: ollama:NAME[:TAG]`: a model the user already pulled, found in Ollama's local store.

Ollama keeps what it pulled as OCI-style manifests and content-addressed blobs (ollama/ollama
``server/modelpath.go``, ``server/manifest.go``): ``<store>/manifests/<host>/<namespace>/<model>/<tag>``
is JSON whose ``layers`` name a ``mediaType`` and a ``digest``, and each layer's bytes are
``<store>/blobs/sha256-<hex>``. The ``…image.model`` layer is the GGUF Ollama runs; the
``template``, ``system`` and ``params`` layers are how it serves it. A name is
``[host/][namespace/]model[:tag]`` with ``registry.ollama.ai``, ``library`` and ``latest`` for
what is left out. The store is ``$OLLAMA_MODELS``, else ``~/.ollama/models``, else the Linux
service's ``/usr/share/ollama/.ollama/models``. Nothing is pulled: a model that is not there is
an error naming where it looked and the ``ollama pull`` to run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UserError

PREFIX = "ollama:"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
LAYER = "application/vnd.ollama.image."
# ollama/ollama types/model/name.go: parts of letters, digits, '_', '-' and '.'.
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def is_ollama(base: str | Path) -> bool:
    return isinstance(base, str) and base.startswith(PREFIX)


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str
    written: str  # as the user wrote it after ``ollama:``, for FROM and messages

    def manifest(self, store: Path) -> Path:
        return store / "manifests" / self.host / self.namespace / self.model / self.tag


def parse_name(base: str) -> OllamaName:
    """``ollama:[host/][namespace/]model[:tag]`` split as Ollama does; a malformed name raises."""
    written = base[len(PREFIX) :] if base.startswith(PREFIX) else base
    path, _, tag = written.partition(":")
    parts = path.split("/")
    tag = tag or DEFAULT_TAG
    if not path or len(parts) > 3 or not all(_PART.match(p) for p in [*parts, tag]):
        raise UserError(
            f"model.base: '{base}' is not an Ollama model name; write ollama:NAME:TAG "
            "(e.g. ollama:deepseek-coder:6.7b, ollama:user/model:tag)"
        )
    host = parts[0] if len(parts) == 3 else DEFAULT_HOST
    namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
    return OllamaName(host, namespace, parts[-1], tag, written)


def store_candidates() -> list[Path]:
    """Where Ollama keeps models, in the order it is looked for."""
    if os.environ.get("OLLAMA_MODELS"):
        return [Path(os.environ["OLLAMA_MODELS"]).expanduser()]
    return [Path.home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


@dataclass(frozen=True)
class OllamaModel:
    """A pulled model: its GGUF blob and the layers Ollama serves it with."""

    name: OllamaName
    manifest: Path
    gguf: Path
    digest: str  # sha256 hex of the GGUF blob, from the manifest
    template: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    adapters: tuple[Path, ...] = ()


def find_model(base: str) -> OllamaModel:
    """The pulled model ``base`` names, read from the first store that has its manifest."""
    name = parse_name(base)
    looked = []
    for store in store_candidates():
        manifest = name.manifest(store)
        looked.append(str(manifest))
        if manifest.is_file():
            return _read(name, manifest, store)
    raise UserError(
        f"model.base: the Ollama model '{name.written}' is not in the local Ollama store "
        f"(looked for {' and '.join(looked)}; set OLLAMA_MODELS if your store is elsewhere). "
        f"Nothing is downloaded during a run: run `ollama pull {name.written}` first"
    )


def _read(name: OllamaName, manifest: Path, store: Path) -> OllamaModel:
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8"))["layers"]
        by_type: dict[str, list[str]] = {}
        for layer in layers:
            by_type.setdefault(layer["mediaType"], []).append(layer["digest"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"model.base: {manifest} is not an Ollama manifest ({exc})") from None

    def blob(digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        path = store / "blobs" / f"{algorithm}-{hexdigest}"
        if algorithm != "sha256" or not path.is_file():
            raise UserError(
                f"model.base: the Ollama model '{name.written}' names the blob {digest} "
                f"({manifest}) but {path} is missing; run `ollama pull {name.written}` again"
            )
        return path

    def text(kind: str) -> str | None:
        digests = by_type.get(LAYER + kind)
        return blob(digests[0]).read_text(encoding="utf-8") if digests else None

    models = by_type.get(LAYER + "model")
    if not models:
        raise UserError(
            f"model.base: the Ollama model '{name.written}' ({manifest}) has no model layer: "
            "it is not a GGUF model Ollama runs (a remote or cloud model cannot be fine-tuned)"
        )
    params = text("params")
    return OllamaModel(
        name=name,
        manifest=manifest,
        gguf=blob(models[0]),
        digest=models[0].partition(":")[2],
        template=text("template"),
        system=text("system"),
        params=json.loads(params) if params else {},
        adapters=tuple(blob(d) for d in by_type.get(LAYER + "adapter", [])),
    )
