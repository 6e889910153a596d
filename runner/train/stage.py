"""Stage "train": write the Axolotl config, check the data as Axolotl tokenizes it, train.

Runs the real ``axolotl train`` once, as a subprocess in the stage folder. QLoRA without CUDA is
refused (unless ``model.cpu_fallback``) and the tokenizer's pad token must not be an end-of-turn
token before it starts; inside it, recipe-runner's Axolotl plugin (``runner.train.plugin``)
checks every config key, trains the template tokens Axolotl leaves masked before an end token,
and refuses to train unless every trained turn of Axolotl's own labels ends with a trained
end-of-turn token; rows longer than ``train.seq_len`` are counted. The output folder survives an
interruption, and a second attempt resumes from its newest checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import proc
from runner.compute.nodes import publish_launch, record_path, this_node
from runner.compute.profiles import Target, recipe_target
from runner.errors import StageError, UserError
from runner.logs import OFFLINE
from runner.run.context import Outcome, StageContext
from runner.train import labels
from runner.train.config import dump_yaml, render_axolotl_config, render_notes
from runner.train.data import prepare_training_data
from runner.train.estimate import gradient_checkpointing
from runner.train.hardware import cuda_available
from runner.train.launch import Rendezvous, launch_command
from runner.train.progress import TrainProgress

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

STAGE = "train"


def axolotl_env() -> dict[str, str]:
    """Telemetry off; output unbuffered, so each logged loss reaches the progress as it happens;
    this interpreter's ``bin/`` first on PATH: ``axolotl train`` execs ``accelerate`` by name
    (``os.execvpe``)."""
    bin_dir = str(Path(sys.executable).parent)
    path = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return {**OFFLINE, "PYTHONUNBUFFERED": "1", "PATH": path}


def axolotl_executable() -> str:
    local = Path(sys.executable).parent / "axolotl"
    found = str(local) if local.exists() else shutil.which("axolotl")
    if not found:
        raise StageError(STAGE, "the `axolotl` command is not installed; run `make setup`")
    return found


def refuse_unsupported(recipe: Recipe, cuda: bool) -> None:
    """4-bit QLoRA needs bitsandbytes on CUDA; on CPU bitsandbytes' 4-bit path has no autograd
    kernel (it warns "may lead to silently incorrect behavior"), so it is refused unless the
    recipe opts into a 16-bit LoRA."""
    if recipe.model.quantization == "4bit" and not cuda and not recipe.model.cpu_fallback:
        raise UserError(
            "model.quantization: 4bit (QLoRA) needs a CUDA GPU with bitsandbytes, and this machine "
            "has none. Run on a GPU machine, or set model.cpu_fallback: true to train a 16-bit "
            "LoRA here instead (slower and larger in memory, same adapter format)"
        )


def refuse_cpu_across_nodes(recipe: Recipe, cuda: bool, target: Target | None) -> None:
    """Axolotl places each rank of a distributed run on ``cuda:LOCAL_RANK`` (its
    ``normalize_config`` sets ``device_map = {"": LOCAL_RANK}`` whenever world_size > 1), so
    torchrun across nodes fails on CPU while loading the model (tried: two nodes on one machine
    met at the rendezvous, then both stopped there): refused before the data stage."""
    on_ray = target is not None and target.backend == "ray"
    if recipe.compute.nodes > 1 and not cuda and not on_ray:
        raise UserError(
            f"compute.nodes is {recipe.compute.nodes}, and this node has no CUDA GPU: Axolotl "
            "trains across processes only on GPUs (each rank loads its model on "
            "cuda:LOCAL_RANK); run it on GPU nodes"
        )


def preflight(recipe: Recipe) -> None:
    """Checks made before any stage runs, so a run that cannot train stops before spending time
    on its data: this machine (QLoRA needs CUDA), a hub base, once found in the local cache
    (a local folder was checked by `recipe validate`, a built-in tiny model is trainable), and
    the parent a run continues from (its base, tokenizer and chat template must be this
    recipe's)."""
    from runner.models.tiny import is_tiny

    cuda = cuda_available()
    refuse_unsupported(recipe, cuda)
    refuse_cpu_across_nodes(recipe, cuda, recipe_target(recipe))
    if not is_tiny(recipe.model.base) or recipe.continue_from is not None:
        base_dir = refuse_untrainable(recipe)
    if recipe.continue_from is not None:
        from runner.prompt.template import load_template
        from runner.train.continue_from import check_parent

        check_parent(recipe, base_dir, load_template(recipe.prompt.template, base_dir).source)


def refuse_untrainable(recipe: Recipe) -> Path:
    """The base's local folder; an encoder-decoder or non-causal base is refused with why."""
    from runner.models import resolve_base
    from runner.models.trainable import folder_reason

    base_dir = resolve_base(recipe.model.base, recipe.model.revision)
    reason = folder_reason(base_dir)
    if reason:
        raise UserError(f"model.base: {reason}")
    return base_dir


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    from runner.models.tokenizer_files import TokenizerFiles
    from runner.prompt.fim import training_prefix
    from runner.prompt.template import TEMPLATE_ARTIFACT, load_template, save_template
    from runner.train import handshake

    cuda = cuda_available()
    refuse_unsupported(recipe, cuda)
    base_dir = refuse_untrainable(recipe)
    target = recipe_target(recipe)
    refuse_cpu_across_nodes(recipe, cuda, target)
    on_ray = target is not None and target.backend == "ray"
    template = load_template(
        recipe.prompt.template, base_dir, system_fallback=recipe.prompt.system_fallback
    )
    start = None
    if recipe.continue_from is not None:
        from runner.train.continue_from import START_FILE, starting_point

        start = starting_point(recipe, base_dir, template.source)
        (ctx.out / START_FILE).write_text(json.dumps(start.to_json(), indent=2) + "\n")
    tokenizer = TokenizerFiles(base_dir)
    end_tokens = [template.end_of_turn]
    end_ids = labels.end_token_ids(tokenizer, end_tokens)
    pad, pad_note = labels.pad_override(tokenizer, end_tokens, template.source)
    # Infill rows end with the eos of the trained tokenizer (the end of turn when the config
    # makes it the eos, as render_axolotl_config does with base_eos below).
    fim_eos = labels.eos_override(template.end_of_turn, tokenizer.eos_token) or tokenizer.eos_token
    data = prepare_training_data(
        ctx.require("data"),
        ctx.out / "data",
        recipe.prompt.train_on,
        fim_bos=training_prefix(tokenizer),
        fim_eos=fim_eos,
    )
    fim_rows = sum(data.fim_counts.values())

    # Paths inside the config are relative to its folder (Axolotl runs there), so the config
    # stays true once the finished folder is renamed into the store.
    cfg = render_axolotl_config(
        recipe,
        base_model=str(start.base_model if start else base_dir),
        lora_model_dir=str(start.lora_model_dir) if start and start.lora_model_dir else None,
        dataset_dir=data.folder.relative_to(ctx.out).as_posix(),
        output_dir=".",
        cuda=cuda,
        template_source=template.source,
        end_of_turn=end_tokens,
        train_examples=data.counts["train"],
        val_examples=data.counts["val"],
        pad_token=pad,
        base_eos=tokenizer.eos_token,
        ray_resources=target.profile.resources_per_worker if on_ray else None,
        gradient_checkpointing=gradient_checkpointing(recipe, cuda=cuda),
        plugins=[handshake.PLUGIN],
        fim_examples=data.fim_counts if fim_rows else None,
    )
    if fim_rows:
        end_ids |= fim_end_ids(tokenizer, fim_eos, ctx)
        notes_fim = [
            f"{data.fim_counts['train']} fill-in-the-middle rows train next to the chat "
            "examples (Axolotl `input_output`: the middle and its end token are trained)"
        ]
    else:
        notes_fim = []
    notes = [
        *notes_fim,
        *data.notes,
        *render_notes(recipe, cuda=cuda, train_examples=data.counts["train"]),
    ]
    if pad_note:
        notes.append(pad_note)
    if eos_note := labels.eos_override_note(cfg):
        notes.append(eos_note)
    config_path = ctx.out / "axolotl.yaml"
    config_path.write_text(dump_yaml(cfg), encoding="utf-8")
    save_template(template, ctx.out)
    train_rows = data.counts["train"] + data.fim_counts.get("train", 0)
    settings = {"end_ids": sorted(end_ids), "train_examples": train_rows}
    (ctx.out / handshake.SETTINGS).write_text(json.dumps(settings) + "\n", encoding="utf-8")
    result_file = ctx.out / handshake.RESULT
    result_file.unlink(missing_ok=True)
    if labels.prepared_count(ctx.out / "prepared") == 1 + (data.counts["val"] > 0):
        notes.append("reused the tokenized data of the interrupted attempt")

    axolotl = axolotl_executable()
    rendezvous = _rendezvous(recipe, target)
    argv = launch_command(
        recipe, config_path.name, cuda=cuda, axolotl=axolotl, rendezvous=rendezvous, ray=on_ray
    )
    if rendezvous is not None:
        # The other nodes wait for this record, then run the same command (runner.compute.nodes).
        publish_launch(record_path(ctx.run_dir.parent, rendezvous.job), argv, ctx.out)
        notes.append(
            f"torchrun across {recipe.compute.nodes} nodes, rendezvous at {rendezvous.endpoint}"
        )
    if cfg.get("use_ray"):
        notes.append(f"Ray Train: {cfg['ray_num_workers']} workers on {target.describe()}")
    try:
        progress = _train(argv, axolotl_env(), ctx)
    except StageError:
        _raise_check_failure(result_file)
        raise
    checked = _check_result(result_file, ctx)
    if checked["filled"]:
        notes.append(
            f"trained {checked['filled']} template tokens between answers and their end-of-turn "
            "token, which Axolotl leaves masked (it trains the end token alone)"
        )
    over = checked["dropped_over_length"]
    if over:
        notes.append(
            f"{over} of {data.counts['train']} training examples are longer than train.seq_len "
            f"({recipe.train.seq_len} tokens) and were dropped by Axolotl"
        )
    history = _loss_history(ctx.out, progress)
    _drop_checkpoints(ctx.out)
    with (ctx.out / "losses.jsonl").open("w", encoding="utf-8") as fh:
        for entry in history:
            fh.write(json.dumps(entry) + "\n")
    if progress.resumed_from:
        notes.append(f"resumed from {Path(progress.resumed_from).name}")
    if start is not None:
        parent = start.parent.describe()
        notes.append(
            f"continued from {parent['name'] or ''} {parent['version'] or parent['path']} "
            f"({start.mode}): training started from {start.lora_model_dir or start.base_model}"
        )
    trained = [h for h in history if "loss" in h]
    evaluated = [h for h in history if "eval_loss" in h]
    return Outcome(
        summary={
            "base_model": str(base_dir),
            "start": start.to_json() if start else None,
            "cuda": cuda,
            "examples": data.counts,
            **({"fim_examples": data.fim_counts} if fim_rows else {}),
            "over_seq_len": over,
            "trained_turns_checked": checked["trained_turns"],
            "steps": trained[-1]["step"] if trained else progress.step,
            "first_loss": trained[0]["loss"] if trained else None,
            "last_loss": trained[-1]["loss"] if trained else None,
            "first_eval_loss": evaluated[0]["eval_loss"] if evaluated else None,
            "last_eval_loss": evaluated[-1]["eval_loss"] if evaluated else None,
            "resumed_from": progress.resumed_from,
        },
        outputs={
            "adapter": ".",
            "axolotl_config": config_path.name,
            "template": TEMPLATE_ARTIFACT,
            "losses": "losses.jsonl",
            **({"fim": "fim.json"} if (ctx.out / "fim.json").is_file() else {}),
        },
        notes=notes,
    )


def fim_end_ids(tokenizer: Any, fim_eos: str, ctx: StageContext) -> set[int]:
    """Infill rows end with ``fim_eos``, the token ``prepare_training_data`` wrote after each
    middle: the label check accepts it as an end. Keeps the data stage's ``fim.json`` with the
    adapter, where the Modelfile and the smoke test read the format the model was trained in."""
    from runner.prompt.fim import FIM_ARTIFACT

    source = ctx.require("data") / FIM_ARTIFACT
    if source.is_file():
        shutil.copyfile(source, ctx.out / FIM_ARTIFACT)
    return labels.end_token_ids(tokenizer, [fim_eos])


def _check_result(result_file: Path, ctx: StageContext) -> dict[str, Any]:
    """The checks' verdict written inside Axolotl (``runner.train.plugin``); without it the
    checks did not run (Axolotl only logs a plugin it cannot import), and training is not
    trusted."""
    try:
        return json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise StageError(
            STAGE,
            "Axolotl trained without recipe-runner's label checks (its plugin did not run; "
            f"see {ctx.log_file})",
        ) from None


def _raise_check_failure(result_file: Path) -> None:
    """After Axolotl failed: the checks' own reason, when one of them stopped it."""
    try:
        result = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if result.get("config_problems"):
        _raise_config_problems(result["config_problems"])
    if result.get("problem"):
        raise StageError(STAGE, result["problem"])


def _raise_config_problems(problems: list[str]) -> None:
    if problems:
        raise UserError("the Axolotl config has problems:\n  " + "\n  ".join(problems))


def _rendezvous(recipe: Recipe, target: Target | None) -> Rendezvous | None:
    """Across nodes with torchrun: the rendezvous this node, the first, hosts. None on one node,
    or on Ray, where Ray Train places the workers."""
    nodes = recipe.compute.nodes
    if nodes == 1 or target is None or target.backend == "ray":
        return None
    node = this_node(nodes)
    assert node.job is not None and node.head is not None
    return Rendezvous(f"{node.head}:{target.profile.rdzv_port}", node.job)


def _train(argv: list[str], env: dict[str, str], ctx: StageContext) -> TrainProgress:
    """Run ``axolotl train`` with a progress bar fed from its output; NaN stops it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from runner.logs import progress_wanted, terminal

    progress = TrainProgress()
    console = Console(file=terminal())
    shown = progress_wanted()
    lines = PlainProgress(terminal(), enabled=shown and not console.is_terminal)
    columns = (
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("eta {task.fields[eta]}"),
    )
    with Progress(
        *columns, console=console, transient=False, disable=not (shown and console.is_terminal)
    ) as bar:
        task = bar.add_task("train", total=None, loss="-", eta="-")

        def on_line(line: str) -> None:
            if progress.feed(line):
                loss = progress.last_loss
                bar.update(
                    task,
                    completed=progress.step,
                    total=progress.total,
                    loss="-" if loss is None else f"{loss:.4f}",
                    eta=progress.eta or "-",
                )
                lines.update(progress)

        proc.run(argv, stage=STAGE, log_file=ctx.log_file, env=env, on_line=on_line, cwd=ctx.out)
    return progress


class PlainProgress:
    """Without a terminal (a pipe, a CI log): one plain line per tenth of the steps."""

    def __init__(self, stream: Any, enabled: bool):
        self.stream, self.enabled, self.shown = stream, enabled, -1

    def update(self, progress: TrainProgress) -> None:
        if not self.enabled or not progress.total:
            return
        tenth = progress.step * 10 // progress.total
        if tenth <= self.shown or progress.last_loss is None:
            return
        self.shown = tenth
        eta = f", eta {progress.eta}" if progress.eta and progress.step < progress.total else ""
        print(
            f"train: step {progress.step}/{progress.total}, loss {progress.last_loss:.4f}{eta}",
            file=self.stream,
            flush=True,
        )


def _loss_history(out: Path, progress: TrainProgress) -> list[dict[str, Any]]:
    """Training and validation loss per logged step: the trainer's saved state (which survives a
    resume), then the steps this attempt logged after its newest saved state."""
    states = [out / "trainer_state.json", *out.glob("checkpoint-*/trainer_state.json")]
    newest = max((s for s in states if s.is_file()), key=lambda s: s.stat().st_mtime, default=None)
    history: list[dict[str, Any]] = []
    if newest is not None:
        log = json.loads(newest.read_text()).get("log_history", [])
        for e in log:
            for key in ("loss", "eval_loss"):
                if key in e:
                    history.append({"step": e["step"], key: e[key], "epoch": e.get("epoch")})
    last = history[-1]["step"] if history else -1
    logged = sorted(
        [*progress.losses, *progress.eval_losses], key=lambda e: (e["step"], "loss" in e)
    )
    return history + [e for e in logged if e["step"] > last]


def _drop_checkpoints(out: Path) -> None:
    """Checkpoints exist for resuming; once training finished, the final adapter supersedes them."""
    for checkpoint in out.glob("checkpoint-*"):
        if checkpoint.is_dir():
            shutil.rmtree(checkpoint)
