"""The train stage as ``recipe plan`` shows it: the Axolotl config and launch, nothing run.

Where the run knows more than the plan (the built base model's folder, the number of examples,
a template read from the tokenizer), the plan says so instead of guessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import UserError
from runner.train.config import render_axolotl_config, render_notes
from runner.train.estimate import gradient_checkpointing
from runner.train.hardware import cuda_available
from runner.train.labels import eos_override_note
from runner.train.launch import launch_command

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

BASE_AT_RUN = "<{base}: resolved to a local folder when the run starts>"


def train_plan(recipe: Recipe) -> dict[str, Any]:
    from runner.prompt.template import load_template

    cuda = cuda_available()
    notes = render_notes(recipe, cuda=cuda)
    try:
        template = load_template(
            recipe.prompt.template, system_fallback=recipe.prompt.system_fallback
        )
        source, end = template.source, [template.end_of_turn]
    except UserError as exc:
        source, end = None, None
        notes.append(f"chat template read from the base tokenizer when the run starts ({exc})")
    cfg = render_axolotl_config(
        recipe,
        base_model=BASE_AT_RUN.format(base=recipe.model.base),
        dataset_dir="data",
        output_dir=".",
        cuda=cuda,
        template_source=source,
        end_of_turn=end,
        gradient_checkpointing=gradient_checkpointing(recipe, cuda=cuda),
    )
    if note := eos_override_note(cfg):
        notes.append(note)
    return {
        "axolotl": cfg,
        "launch": launch_command(recipe, "axolotl.yaml", cuda=cuda),
        "notes": notes,
        "cuda": cuda,
    }
