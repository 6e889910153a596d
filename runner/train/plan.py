"""The train stage as ``recipe plan`` shows it: the Axolotl config and launch, nothing run.

Where the run knows more than the plan (the built base model's folder, the number of examples,
a template read from the tokenizer), the plan says so instead of guessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.compute.profiles import recipe_target
from runner.errors import UserError
from runner.train.config import render_axolotl_config, render_notes
from runner.train.estimate import gradient_checkpointing
from runner.train.hardware import cuda_available
from runner.train.labels import eos_override_note
from runner.train.launch import Rendezvous, launch_command

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

BASE_AT_RUN = "<{base}: resolved to a local folder when the run starts>"
# Across nodes, the rendezvous host and the job id are the scheduler's, known when the job runs.
HEAD_AT_RUN = "<node 0>"
JOB_AT_RUN = "<job id>"


def train_plan(recipe: Recipe) -> dict[str, Any]:
    from runner.prompt.template import load_template

    target = recipe_target(recipe)
    remote_cuda = target.profile.cuda if target is not None else None
    cuda = cuda_available() if remote_cuda is None else remote_cuda
    notes = render_notes(recipe, cuda=cuda)
    if remote_cuda is not None:
        notes.append(
            f"planned for the {target.describe()}: "
            + ("CUDA GPUs" if cuda else "no GPUs")
            + "; the train stage decides again on the node"
        )
    on_ray = target is not None and target.backend == "ray"
    rendezvous = None
    if recipe.compute.nodes > 1 and target is not None and not on_ray:
        port = target.profile.rdzv_port
        rendezvous = Rendezvous(f"{HEAD_AT_RUN}:{port}", JOB_AT_RUN)
        notes.append(
            f"every one of the {recipe.compute.nodes} nodes runs this launch; node 0 hosts the "
            "rendezvous, and merge, GGUF, Ollama and eval run on node 0 only"
        )
        if not cuda:
            notes.append(
                "no CUDA: Axolotl trains across nodes only on GPUs, so the run refuses to start "
                "on CPU nodes"
            )
    try:
        template = load_template(
            recipe.prompt.template, system_fallback=recipe.prompt.system_fallback
        )
        source, end = template.source, [template.end_of_turn]
    except UserError as exc:
        source, end = None, None
        notes.append(f"chat template read from the base tokenizer when the run starts ({exc})")
    base_model = BASE_AT_RUN.format(base=recipe.model.base)
    lora_model_dir = None
    parent = recipe.continue_from
    if parent is not None:
        if parent.mode == "same_adapter":
            lora_model_dir = f"<the adapter of {parent.run}>"
        else:
            base_model = f"<{parent.run}: merged onto its base when the run starts>"
        notes.append(
            f"continue_from {parent.run} ({parent.mode}): base, tokenizer and chat template are "
            "checked against the parent's when the run starts"
        )
    cfg = render_axolotl_config(
        recipe,
        base_model=base_model,
        lora_model_dir=lora_model_dir,
        dataset_dir="data",
        output_dir=".",
        cuda=cuda,
        template_source=source,
        end_of_turn=end,
        ray_resources=target.profile.resources_per_worker if on_ray else None,
        gradient_checkpointing=gradient_checkpointing(recipe, cuda=cuda),
    )
    if note := eos_override_note(cfg):
        notes.append(note)
    if cfg.get("use_ray"):
        notes.append(
            f"Ray Train: {cfg['ray_num_workers']} workers (compute.nodes x compute.gpus), each "
            f"asking Ray for {cfg['resources_per_worker']}"
        )
    launch = launch_command(recipe, "axolotl.yaml", cuda=cuda, rendezvous=rendezvous, ray=on_ray)
    return {
        "axolotl": cfg,
        "launch": launch,
        "notes": notes,
        "cuda": cuda,
    }
