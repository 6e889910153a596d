"""Golden Modelfiles: the Modelfile of every shipped recipe's ollama exports, as a reviewer reads
it. An intended change shows as a diff of these files; refresh them with `make golden`.

The tokens are the ones of each recipe's base family (Qwen2's tokenizer has no BOS and its GGUF
adds none; Llama and DeepSeek-Coder GGUFs add BOS themselves), as the ollama stage reads them
from the trained tokenizer and the GGUF.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.export import ollama
from runner.prompt.template import load_template
from runner.recipe.load import load_recipe
from tests.conftest import FAMILY_TOKENS

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "base" not in p.parts)
GOLDEN = ROOT / "tests" / "golden" / "ollama"
REFRESH = os.environ.get("REFRESH_GOLDEN") == "1"
KEY = "0" * 64


def family(base: str) -> str:
    lowered = base.lower()
    for name in ("qwen2", "deepseek-coder", "llama"):
        if name.split("-")[0] in lowered:
            return name
    raise AssertionError(f"no token table for base {base}")


def modelfiles(path: Path) -> dict[str, str]:
    from runner.export.gguf import artifact_stem
    from runner.models.gguf_base import is_gguf_base

    recipe = load_recipe(path)
    fam = family(recipe.model.base)
    tokens = FAMILY_TOKENS[fam]
    template = load_template(
        recipe.prompt.template, **tokens, system_fallback=recipe.prompt.system_fallback
    )
    stem = artifact_stem(recipe)
    out = {}
    for index, target in enumerate(recipe.exports("ollama")):
        kind = "base-f16" if target.from_ == "adapter" else target.from_
        adapter = None
        if target.from_ == "adapter":
            lora = recipe.exports("lora_gguf")[0]
            adapter = f"../gguf/{stem}-lora-{lora.outtype}.gguf"
        model_file = f"../gguf/{stem}-{kind}.gguf"
        if adapter and is_gguf_base(recipe.model.base):
            # FROM the model the user already runs: the Ollama model or the GGUF file.
            model_file = ollama.pulled_base(recipe, target) or recipe.model.base
        text = ollama.render_modelfile(
            recipe,
            template,
            model_file,
            target=target,
            model=ollama.model_name(target, KEY, recipe),
            adapter_relpath=adapter,
            special_stops=[tokens["eos_token"]],
            runtime_adds_bos=fam != "qwen2",
        )
        name = "Modelfile" if index == 0 else f"Modelfile.{index}"
        out[name] = text.replace(str(ROOT) + "/", "")
    return out


def test_every_shipped_recipe_with_an_ollama_export_has_golden_modelfiles():
    with_ollama = [p for p in RECIPES if load_recipe(p).exports("ollama")]
    assert len(with_ollama) >= 5


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_modelfile_golden(path):
    rel = path.relative_to(ROOT / "recipes").with_suffix("")
    for name, text in modelfiles(path).items():
        golden = GOLDEN / rel.parent / f"{rel.name}.{name}"
        if REFRESH or not golden.exists():
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
            if not REFRESH:
                pytest.fail(f"{golden} did not exist; written now, review and commit it")
        assert text == golden.read_text(), f"{golden} differs; run `make golden` if intended"
