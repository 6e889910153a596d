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
from runner.errors import StageError, UserError
from runner.logs import OFFLINE
from runner.run.context import Outcome, StageContext
from runner.train import labels
from runner.train.config import dump_yaml, render_axolotl_config, render_notes
from runner.train.data import prepare_training_data
from runner.train.estimate import gradient_checkpointing
from runner.train.hardware import cuda_available
from runner.train.launch import launch_command
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


def preflight(recipe: Recipe) -> None:
    """Checks made before any stage runs, so a run that cannot train stops before spending time
    on its data: this machine (QLoRA needs CUDA), and a hub base, once found in the local cache
    (a local folder was checked by `recipe validate`, a built-in tiny model is trainable)."""
    from runner.models.tiny import is_tiny

    refuse_unsupported(recipe, cuda_available())
    if not is_tiny(recipe.model.base):
        refuse_untrainable(recipe)


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
    from runner.prompt.template import TEMPLATE_ARTIFACT, load_template, save_template
    from runner.train import plugin

    cuda = cuda_available()
    refuse_unsupported(recipe, cuda)
    base_dir = refuse_untrainable(recipe)
    template = load_template(
        recipe.prompt.template, base_dir, system_fallback=recipe.prompt.system_fallback
    )
    tokenizer = TokenizerFiles(base_dir)
    end_tokens = [template.end_of_turn]
    end_ids = labels.end_token_ids(tokenizer, end_tokens)
    pad, pad_note = labels.pad_override(tokenizer, end_tokens, template.source)
    data = prepare_training_data(ctx.require("data"), ctx.out / "data", recipe.prompt.train_on)

    # Paths inside the config are relative to its folder (Axolotl runs there), so the config
    # stays true once the finished folder is renamed into the store.
    cfg = render_axolotl_config(
        recipe,
        base_model=str(base_dir),
        dataset_dir=data.folder.relative_to(ctx.out).as_posix(),
        output_dir=".",
        cuda=cuda,
        template_source=template.source,
        end_of_turn=end_tokens,
        train_examples=data.counts["train"],
        val_examples=data.counts["val"],
        pad_token=pad,
        base_eos=tokenizer.eos_token,
        gradient_checkpointing=gradient_checkpointing(recipe, cuda=cuda),
        plugins=[plugin.PLUGIN],
    )
    notes = [*data.notes, *render_notes(recipe, cuda=cuda, train_examples=data.counts["train"])]
    if pad_note:
        notes.append(pad_note)
    if eos_note := labels.eos_override_note(cfg):
        notes.append(eos_note)
    config_path = ctx.out / "axolotl.yaml"
    config_path.write_text(dump_yaml(cfg), encoding="utf-8")
    save_template(template, ctx.out)
    settings = {"end_ids": sorted(end_ids), "train_examples": data.counts["train"]}
    (ctx.out / plugin.SETTINGS).write_text(json.dumps(settings) + "\n", encoding="utf-8")
    result_file = ctx.out / plugin.RESULT
    result_file.unlink(missing_ok=True)
    if labels.prepared_count(ctx.out / "prepared") == 1 + (data.counts["val"] > 0):
        notes.append("reused the tokenized data of the interrupted attempt")

    axolotl = axolotl_executable()
    try:
        progress = _train(recipe, config_path, cuda, axolotl, axolotl_env(), ctx)
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
    return Outcome(
        summary={
            "base_model": str(base_dir),
            "cuda": cuda,
            "examples": data.counts,
            "over_seq_len": over,
            "trained_turns_checked": checked["trained_turns"],
            "steps": history[-1]["step"] if history else progress.step,
            "first_loss": history[0]["loss"] if history else None,
            "last_loss": history[-1]["loss"] if history else None,
            "resumed_from": progress.resumed_from,
        },
        outputs={
            "adapter": ".",
            "axolotl_config": config_path.name,
            "template": TEMPLATE_ARTIFACT,
            "losses": "losses.jsonl",
        },
        notes=notes,
    )


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


def _train(
    recipe: Recipe, config_path: Path, cuda: bool, axolotl: str, env: dict, ctx: StageContext
) -> TrainProgress:
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

        argv = launch_command(recipe, config_path.name, cuda=cuda, axolotl=axolotl)
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
    """Loss per logged step: the trainer's saved state (which survives a resume), then the
    steps this attempt logged after its newest saved state."""
    states = [out / "trainer_state.json", *out.glob("checkpoint-*/trainer_state.json")]
    newest = max((s for s in states if s.is_file()), key=lambda s: s.stat().st_mtime, default=None)
    history: list[dict[str, Any]] = []
    if newest is not None:
        log = json.loads(newest.read_text()).get("log_history", [])
        history = [
            {"step": e["step"], "loss": e["loss"], "epoch": e.get("epoch")}
            for e in log
            if "loss" in e
        ]
    last = history[-1]["step"] if history else 0
    return history + [e for e in progress.losses if e["step"] > last]


def _drop_checkpoints(out: Path) -> None:
    """Checkpoints exist for resuming; once training finished, the final adapter supersedes them."""
    for checkpoint in out.glob("checkpoint-*"):
        if checkpoint.is_dir():
            shutil.rmtree(checkpoint)
