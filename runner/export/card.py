"""The model card (README.md) of a run: what the model is, what it was trained on, how to run it.

Everything in it is read from the run: the resolved recipe, the data stage's ``report.json``,
the GGUF files, the smoke test and the evaluation results. A section whose stage did not run
says so instead of being left out silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def front_matter(recipe: Recipe, license_: str | None) -> dict[str, Any]:
    """The Hub's YAML metadata block."""
    base = recipe.model.base
    meta: dict[str, Any] = {
        "license": license_ or "other",
        "tags": ["recipe-runner", "axolotl", "lora", "gguf", "code"],
        "library_name": "peft",
    }
    if "/" in base and not Path(base).exists() and not base.startswith("tiny:"):
        meta["base_model"] = base
    return meta


def _folder(folders: Mapping[str, Path | None], stage: str) -> Path:
    return folders.get(stage) or Path("/nonexistent")


def data_section(recipe: Recipe, folders: Mapping[str, Path | None]) -> list[str]:
    report = _read_json(_folder(folders, "data") / "report.json")
    lines = ["## Training data", ""]
    per_source = report.get("sources", {})
    rows = []
    for i, source in enumerate(recipe.sources):
        where = source.path
        # The data stage names an unnamed source "<type><index>" (runner/data/build.py).
        counts = per_source.get(source.name or f"{source.type}{i}", {})
        kept = sum(v for k, v in counts.items() if k.startswith("in ") and isinstance(v, int))
        rows.append((source.type, f"`{where}`" if where else "", kept or "?"))
    if rows:
        lines += _table(("source", "location", "examples kept"), rows) + [""]
    written = report.get("split", {}).get("written", {})
    if written:
        lines.append(
            "Split: " + ", ".join(f"{name} {count}" for name, count in written.items()) + "."
        )
    elif not report:
        lines.append("The data stage's report.json was not found in this run.")
    if recipe.filters:
        lines += ["", "Filters, in order:", ""]
        flows = {f.get("index"): f for f in report.get("filters", []) if isinstance(f, dict)}
        for i, options in enumerate(recipe.filters):
            spec = options.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "type")
            dropped = sum((flows.get(i, {}).get("dropped") or {}).values())
            tail = f" (dropped {dropped})" if i in flows else ""
            lines.append(f"- `{options.type}`{': ' + params if params else ''}{tail}")
    return lines + [""]


def hyperparameter_section(recipe: Recipe) -> list[str]:
    lines = ["## Training", ""]
    rows = []
    for section in ("lora", "train"):
        values = getattr(recipe, section).model_dump(mode="json")
        for key, value in sorted(values.items()):
            rows.append((f"{section}.{key}", f"`{json.dumps(value)}`"))
    rows.append(("prompt.template", f"`{recipe.prompt.template}`"))
    return lines + _table(("setting", "value"), rows) + [""]


def results_section(folders: Mapping[str, Path | None]) -> list[str]:
    lines = ["## Evaluation", ""]
    results = _read_json(_folder(folders, "eval") / "results.json")
    if results:
        loss = results.get("loss") or {}
        rows = [(k, v) for k, v in loss.items() if isinstance(v, int | float)]
        rate = results.get("pass_rate")
        if isinstance(rate, dict):
            rows += [(f"pass rate ({k})", v) for k, v in rate.items()]
        elif isinstance(rate, int | float):
            rows.append(("pass rate", rate))
        gate = results.get("gate") or {}
        if gate:
            rows.append(("gate passed", gate.get("passed")))
        lines += _table(("metric", "value"), rows) if rows else ["(no metrics recorded)"]
    else:
        lines.append("The evaluation stage did not run for this model.")
    smoke = _read_json(_folder(folders, "smoke") / "smoke.json")
    if smoke:
        lines += ["", "Smoke test (greedy, held-out prompts, llama.cpp):", ""]
        rows = []
        for kind, result in smoke.get("models", {}).items():
            answers = result.get("answers", [])
            stopped = sum(1 for a in answers if a.get("checks", {}).get("stopped_on_end_token"))
            rows.append(
                (kind, "yes" if result.get("passed") else "no", f"{stopped}/{len(answers)}")
            )
        lines += _table(("file", "passed", "stopped on end token"), rows)
    return lines + [""]


def usage_section(recipe: Recipe, folders: Mapping[str, Path | None]) -> list[str]:
    ggufs = sorted(_folder(folders, "gguf").glob("*.gguf"))
    lines = ["## Files and how to run them", ""]
    if ggufs:
        lines += _table(("file", "size"), [(f"`{p.name}`", _size(p.stat().st_size)) for p in ggufs])
        full = [p for p in ggufs if "-lora-" not in p.name and "-base-" not in p.name]
        example = next((p for p in full if "q4_k_m" in p.name), full[0] if full else ggufs[0])
        lines += [
            "",
            "With llama.cpp (the chat template is stored in the GGUF):",
            "",
            "```sh",
            f"llama-cli -m {example.name} -cnv",
            "```",
        ]
    ollama = recipe.exports("ollama")
    if ollama:
        from runner.export.ollama import default_model

        name = default_model(recipe, ollama[0])
        lines += [
            "",
            "With Ollama (the Modelfile has the explicit TEMPLATE and every stop token):",
            "",
            "```sh",
            f"ollama create {name} -f Modelfile",
            f"ollama run {name}",
            "```",
        ]
    if not ggufs and not ollama:
        lines.append("No GGUF or Ollama export in this run; load the adapter with peft.")
    return lines + [""]


def render_card(
    recipe: Recipe, folders: Mapping[str, Path | None], license_: str | None = None
) -> str:
    """The full README.md text, from the finished folders of the run's stages (by name)."""
    license_ = license_ or recipe.model.license
    base = recipe.model.base
    head = ["---", yaml.safe_dump(front_matter(recipe, license_), sort_keys=False).strip(), "---"]
    title = f"{recipe.name}:{recipe.version}" if recipe.version else recipe.name
    intro = [
        "",
        f"# {title}",
        "",
        (recipe.description or "").strip(),
        "",
        f"A LoRA fine-tune of `{base}`, built by recipe-runner from the recipe "
        f"`{recipe.path.name}`.",
    ]
    if base.startswith("tiny:"):
        intro += [
            "",
            f"Note: `{base}` is a small randomly initialised test model with a real tokenizer, "
            "not a trained language model; this card describes a pipeline test.",
        ]
    intro += ["", f"License: {license_ or 'not stated in the recipe'}.", ""]
    body = (
        data_section(recipe, folders)
        + hyperparameter_section(recipe)
        + results_section(folders)
        + usage_section(recipe, folders)
    )
    return "\n".join(head + intro + body).rstrip() + "\n"
