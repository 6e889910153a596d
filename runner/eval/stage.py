"""The eval stage: held-out loss and generation checks, base versus fine-tuned, gate, report.

Reads the finished outputs of earlier stages (``data/test.jsonl``, ``train/``, ``merged/``,
``gguf/``) and writes under ``ctx.out``: ``results.json`` (every number), ``samples.jsonl``
(every answer with its check results), the pictures, ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import gc
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from runner.dataset import Split, read_split, with_prompts
from runner.errors import GateFailed, StageError
from runner.eval.checks import CheckList, CheckSet, build_checks
from runner.eval.gate import GateSection, gate_failures
from runner.export.smoke import SmokeSection
from runner.recipe.fields import Section
from runner.run.context import Failure, Outcome, StageContext, stage_log

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


class EvalSection(Section):
    """`eval:`: does the fine-tune beat its base on the project's held-out data?"""

    enabled: bool = True
    compare_base: bool = True
    """Also evaluate the base model, converted the same way."""
    max_prompts: int = Field(20, ge=1)
    """Test prompts answered by each model."""
    max_new_tokens: int = Field(256, ge=1)
    checks: CheckList = Field(({"type": "stops"},), validate_default=True)
    """What each answer is checked for."""
    allow_commands: bool = False
    """Allow `command` checks to run programs for this recipe."""
    gate: GateSection = GateSection()
    smoke: SmokeSection = SmokeSection()


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Evaluate the fine-tuned model against its base. A missed ``eval.gate`` is a finished
    evaluation (its report written and kept) whose outcome fails the run with exit status 3."""
    ev = recipe.eval
    # Refuse `command` checks without permission before loading anything.
    checks = build_checks(ev.checks, allow_commands=ev.allow_commands)
    for check in checks.checks:
        if hasattr(check, "log_file"):
            check.log_file = ctx.log_file
    testset = with_prompts(read_split(ctx.require("data"), "test"))
    if not testset.rows:
        why = "; ".join(sorted({s["reason"] for s in testset.skipped})) or "it is empty"
        raise StageError(
            "eval",
            f"no test conversation to evaluate in {testset.path} ({why}): evaluation needs "
            "split.test > 0",
        )
    results = evaluate(recipe, ctx, checks, testset)
    report = write_outputs(recipe, ctx, results)
    failures = report["gate"]["failures"]
    failure = None
    if failures:
        failure = Failure(
            "; ".join(failures) + f" (report: {ctx.run_dir / 'eval' / 'report.md'})",
            exit_code=GateFailed.exit_code,
            kind="gate missed",
        )
    return Outcome(
        summary={
            "loss": {k: report["loss"].get(k) for k in ("base", "tuned", "improvement")},
            "pass_rate": report["pass_rate"],
            "checks": report["checks"],
            "gate": report["gate"],
            "test_cases": report["data"]["test_cases"],
            "generated": report["generated"],
        },
        outputs={name: name for name in report["outputs"]},
        notes=list(report["notes"]),
        failure=failure,
    )


def evaluate(recipe: Recipe, ctx: StageContext, checks: CheckSet, testset: Split) -> dict[str, Any]:
    """Measure everything; returns the results dict the report is written from."""
    from transformers import AutoTokenizer

    from runner.eval import artifacts
    from runner.eval.loss import encode_all
    from runner.models import resolve_base
    from runner.prompt.template import read_template

    ev = recipe.eval
    notes = list(dict.fromkeys(checks.notes))
    if note := testset.skip_note():
        notes.append(note)
    base_dir = resolve_base(recipe.model.base, recipe.model.revision)
    train_dir = ctx.require("train")
    tuned = artifacts.tuned_model(ctx.input("merge"), train_dir, base_dir)
    template = read_template(train_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tuned.tokenizer_dir))

    seq_len = recipe.train.seq_len
    encoded, loss_skipped = encode_all(
        tokenizer, template, testset.rows, recipe.prompt.train_on, seq_len
    )
    loss = {"tokens": 0, "examples": len(encoded), "skipped": loss_skipped}
    losses: dict[str, Any] = {}
    for side, (model_dir, adapter) in _loss_models(tuned, base_dir, ev.compare_base).items():
        losses[side] = _measure_loss(model_dir, adapter, encoded, side)
    loss.update(_loss_pair(losses))

    cases = testset.rows[: ev.max_prompts]
    infill = _infill_rows(recipe, ctx, notes)
    generated = _generate(
        recipe, ctx, tuned, base_dir, template, tokenizer, cases, ev.max_new_tokens, notes, infill
    )

    return {
        "testset": testset,
        "cases": cases,
        "loss": loss,
        "losses": losses,
        "generated": generated,
        "checks": checks,
        "notes": notes,
        "models": {
            "base": str(base_dir),
            "tuned": tuned.describe(),
            **{f"gguf_{k}": str(v) for k, v in generated.get("gguf", {}).items()},
        },
    }


def _loss_models(
    tuned: Any, base_dir: Path, compare_base: bool
) -> dict[str, tuple[Path, Path | None]]:
    models = {"tuned": (tuned.model_dir, tuned.adapter_dir)}
    if compare_base:
        models = {"base": (base_dir, None), **models}
    return models


def _measure_loss(model_dir: Path, adapter: Path | None, encoded: list, side: str) -> Any:
    from rich.progress import Progress

    from runner.eval.loss import heldout_loss, load_model

    model = load_model(model_dir, adapter)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"held-out loss ({side})", total=len(encoded))
        result = heldout_loss(model, encoded, progress=lambda: progress.advance(task))
    del model
    gc.collect()
    return result


def _loss_pair(losses: Mapping[str, Any]) -> dict[str, Any]:
    base, tuned = losses.get("base"), losses.get("tuned")
    b = base.loss if base is not None else None
    t = tuned.loss if tuned is not None else None
    return {
        "base": b,
        "tuned": t,
        "improvement": None if b is None or t is None else b - t,
        "perplexity": {
            "base": base.perplexity if base else None,
            "tuned": tuned.perplexity if tuned else None,
        },
        "tokens": tuned.tokens if tuned else 0,
    }


def _generate(
    recipe, ctx, tuned, base_dir, template, tokenizer, cases, max_new, notes, infill=()
) -> dict[str, Any]:
    """Answers of the fine-tuned GGUF (and the base converted the same way) to the test prompts."""
    from rich.console import Console

    from runner.eval import artifacts
    from runner.eval.generate import generate_samples, render_prompts

    gguf_dir = ctx.input("gguf")
    chosen = artifacts.choose_gguf(gguf_dir, recipe) if gguf_dir is not None else None
    outtype = artifacts.gguf_outtype(recipe)
    if chosen is None and tuned.adapter_dir is not None:
        notes.append(
            "no GGUF and no merged model in this run: generation checks skipped "
            "(add `- type: merge` and `- type: gguf` under export)"
        )
        return {}
    qtype = chosen.qtype if chosen else outtype
    prompts = render_prompts(template, cases)
    longest = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    n_ctx = longest + max_new + 8
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=ctx.out) as scratch:
        if chosen is None:
            # Converted for this evaluation only, then deleted with the scratch folder.
            path = artifacts.convert_like_export(
                tuned.model_dir, Path(scratch), qtype, outtype, label="tuned", log_file=ctx.log_file
            )
            chosen = artifacts.ExportedGGUF(path, qtype)
            notes.append(
                f"the recipe exports no GGUF: the merged model was converted to {qtype} here"
            )
        runs = {"tuned": (chosen.path, chosen.lora)}
        if recipe.eval.compare_base:
            # A LoRA export's base GGUF is the base converted the same way; else convert it.
            base = (
                chosen.path
                if chosen.lora
                else artifacts.base_gguf(base_dir, qtype, outtype, log_file=ctx.log_file)
            )
            runs = {"base": (base, None), **runs}
        samples = {}
        for side, (path, lora) in runs.items():
            with console.status(
                f"generating {len(cases)} answers with the {side} model ({path.name})"
            ):
                samples[side] = generate_samples(
                    path, template, cases, max_new_tokens=max_new, n_ctx=n_ctx, lora=lora
                )
                if infill:
                    from runner.eval.checks.fim import infill_samples

                    samples[side] += infill_samples(
                        path, infill, tokenizer, max_new_tokens=max_new, lora=lora
                    )
    ggufs = {side: " + ".join(str(p) for p in run if p) for side, run in runs.items()}
    if Path(scratch) in chosen.path.parents:
        ggufs["tuned"] = f"(converted here from {tuned.model_dir}, then deleted)"
    return {"samples": samples, "gguf": ggufs, "qtype": qtype}


def _infill_rows(recipe: Recipe, ctx: StageContext, notes: list[str]) -> list[Any]:
    """With a `fim` check: the held-out infill rows each model answers (the `fim` check judges
    only those; ``runner.eval.checks.fim``)."""
    from runner.dataset import read_fim_split

    fim = [c for c in recipe.eval.checks if c.type == "fim"]
    if not fim:
        return []
    rows = read_fim_split(ctx.require("data"), "test").rows[: fim[0].max_examples]
    if not rows:
        notes.append("fim check: no held-out infill rows (test.fim.jsonl) to evaluate")
    return rows


def write_outputs(recipe: Recipe, ctx: StageContext, results: dict[str, Any]) -> dict[str, Any]:
    """results.json, samples.jsonl, pictures and the report; returns what the report shows."""
    from runner.eval import history
    from runner.eval.report import write_report
    from runner.eval.score import compare, most_different, pass_rates, run_checks

    out: Path = ctx.out
    out.mkdir(parents=True, exist_ok=True)
    checks: CheckSet = results["checks"]
    samples = results["generated"].get("samples", {})
    check_results = {side: run_checks(checks, s) for side, s in samples.items()}
    rates = {side: pass_rates(r, checks.labels) for side, r in check_results.items()}
    comparison = compare(rates.get("base"), rates["tuned"], checks.labels) if rates else {}
    differences = []
    if "base" in samples:
        differences = most_different(
            samples["base"], samples["tuned"], check_results["base"], check_results["tuned"]
        )
    data_report = history.read_data_report(ctx.require("data"))
    testset: Split = results["testset"]
    metrics = {"loss": results["loss"], **comparison}
    fim = _fim_summary(samples)
    gate = recipe.eval.gate
    failures = gate_failures(gate, metrics)
    summary = {
        "recipe": {"name": recipe.name, "stage_key": ctx.key, "path": str(recipe.path)},
        "data": {
            "counts": history.data_counts(data_report),
            "test_cases": len(testset.rows),
            "test_rows_skipped": testset.skipped,
        },
        "generated": len(results["cases"]) if samples else 0,
        "loss": {k: v for k, v in results["loss"].items()},
        "pass_rate": comparison.get("pass_rate"),
        "checks": comparison.get("checks", {}),
        "differences": differences,
        "models": results["models"],
        "gate": {"thresholds": gate.thresholds(), "passed": not failures, "failures": failures},
        **({"fim": fim} if fim else {}),
        "notes": results["notes"],
        "outputs": ["results.json", "samples.jsonl", "report.md", "report.html"],
    }
    with (out / "samples.jsonl").open("w", encoding="utf-8") as handle:
        for side, side_samples in samples.items():
            for sample, res in zip(side_samples, check_results[side], strict=True):
                row = {
                    "model": side,
                    "id": sample.id,
                    "answer": sample.answer,
                    "finish_reason": sample.finish_reason,
                    "checks": {k: vars(v) for k, v in res.items()},
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    per_example = {side: r.per_example for side, r in results["losses"].items()}
    (out / "results.json").write_text(
        json.dumps({**summary, "loss_per_example": per_example}, indent=2, default=str) + "\n"
    )
    images = draw_pictures(ctx, comparison, out)
    write_report(out, summary, images)
    summary["outputs"] += sorted(p.name for p in images.values())
    return summary


def _fim_summary(samples: Mapping[str, Any]) -> dict[str, Any] | None:
    """Infill exact match and similarity per model, when the `fim` check ran."""
    from runner.eval.checks.fim import fim_summary

    found = {side: fim_summary(side_samples) for side, side_samples in samples.items()}
    return {side: value for side, value in found.items() if value} or None


def draw_pictures(ctx: StageContext, comparison: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """The loss curve, the data stage's token histogram and the pass-rate bars, under ``out``."""
    import shutil

    from runner.eval import history, plots

    images: dict[str, Path] = {}
    train_dir = ctx.require("train")
    steps = history.training_history(train_dir, stage_log(train_dir, "train"))
    if any("loss" in h for h in steps):
        images["loss_curve.png"] = plots.loss_curve(steps, out / "loss_curve.png")
    hist = history.token_histogram(ctx.require("data"))
    if hist is not None:
        images["token_lengths.png"] = Path(shutil.copyfile(hist, out / "token_lengths.png"))
    if comparison:
        images["pass_rates.png"] = plots.pass_rate_bars(comparison, out / "pass_rates.png")
    return images
