"""The eval stage: held-out loss and generation checks, base (and parent) versus fine-tuned, gate,
report.

Reads the finished outputs of earlier stages (``data/test.jsonl``, ``train/``, ``merged/``,
``gguf/``) and writes under ``ctx.out``: ``results.json`` (every number), ``samples.jsonl``
(every answer with its check results and time), the pictures, ``report.md`` and ``report.html``.

The models: the base, the parent (a run that ``continue_from`` an earlier one) and the
fine-tuned model. The test sets: the split's test rows, the fixed ``eval.test_set`` file, and the
parent's test split (did the new version forget what the old one knew?). The gate reads the
fixed test set when there is one, else the split (the "primary" set), and the parent's split
for ``max_regression``.
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
from runner.recipe.fields import RecipePath, Section
from runner.run.context import Failure, Outcome, StageContext, stage_log

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

# The test sets, in report order, and how the report names them.
SETS = {
    "test": "the test split",
    "test_set": "the fixed test set (eval.test_set)",
    "parent_test": "the parent's test split",
}


class EvalSection(Section):
    """`eval:`: does the fine-tune beat its base on the project's held-out data?"""

    enabled: bool = True
    compare_base: bool = True
    """Also evaluate the base model, converted the same way."""
    max_prompts: int = Field(20, ge=1)
    """Test prompts answered by each model (per test set)."""
    max_new_tokens: int = Field(256, ge=1)
    test_set: RecipePath | None = None
    """A fixed JSONL file of test prompts (instruction or messages form, reference answers and
    `meta` optional), evaluated beside the split's test rows; the gate reads its results."""
    group_by: str | None = None
    """A metadata key (`meta.version`): every pass rate is also broken down by its value, in the
    report and in the gate (`gate.min_pass_rate_per_group`)."""
    checks: CheckList = Field(({"type": "stops"},), validate_default=True)
    """What each answer is checked for."""
    allow_commands: bool = False
    """Allow `command` checks to run programs for this recipe."""
    gate: GateSection = GateSection()
    smoke: SmokeSection = SmokeSection()


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Evaluate the fine-tuned model against its base (and parent). A missed ``eval.gate`` is a
    finished evaluation (its report written and kept) whose outcome fails the run with exit
    status 3."""
    ev = recipe.eval
    # Refuse `command` checks without permission before loading anything.
    checks = build_checks(ev.checks, allow_commands=ev.allow_commands)
    for check in checks.checks:
        if hasattr(check, "log_file"):
            check.log_file = ctx.log_file
    parent = _parent(recipe)
    sets = load_sets(recipe, ctx, parent)
    results = evaluate(recipe, ctx, checks, sets, parent)
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
            "loss": {
                k: report["loss"].get(k) for k in ("base", "parent", "tuned", "improvement", "set")
            },
            "pass_rate": report["pass_rate"],
            "checks": report["checks"],
            "groups": report["groups"],
            "latency": report["latency"],
            "sets": {
                name: {k: s.get(k) for k in ("loss", "pass_rate", "checks", "groups", "latency")}
                for name, s in report["sets"].items()
            },
            "primary": report["primary"],
            "gate": report["gate"],
            "test_cases": report["data"]["test_cases"],
            "generated": report["generated"],
        },
        outputs={name: name for name in report["outputs"]},
        notes=list(report["notes"]),
        failure=failure,
    )


def _parent(recipe: Recipe) -> Any:
    section = recipe.continue_from
    if section is None:
        return None
    from runner.train.continue_from import find_parent

    return find_parent(section.run)


def load_sets(recipe: Recipe, ctx: StageContext, parent: Any = None) -> dict[str, Split]:
    """The test sets to evaluate on, in report order; refuses when none has a prompt."""
    ev = recipe.eval
    sets: dict[str, Split] = {}
    split = with_prompts(read_split(ctx.require("data"), "test"))
    if split.rows or ev.test_set is None:
        sets["test"] = split
    if ev.test_set is not None:
        from runner.eval.test_set import read_test_set

        sets["test_set"] = read_test_set(Path(ev.test_set), recipe.prompt.system)
    if parent is not None and parent.test_split() is not None:
        sets["parent_test"] = with_prompts(read_split(parent.data_dir, "test"))
    if not any(s.rows for name, s in sets.items() if name != "parent_test"):
        where = sets.get("test_set", sets.get("test"))
        why = "; ".join(sorted({s["reason"] for s in where.skipped})) or "it is empty"
        raise StageError(
            "eval",
            f"no test conversation to evaluate in {where.path} ({why}): evaluation needs "
            "split.test > 0 or an eval.test_set",
        )
    return sets


def primary_set(sets: Mapping[str, Split]) -> str:
    """The set the gate reads: the fixed test set when it has prompts, else the split's."""
    fixed = sets.get("test_set")
    return "test_set" if fixed is not None and (fixed.rows or "test" not in sets) else "test"


def evaluate(
    recipe: Recipe,
    ctx: StageContext,
    checks: CheckSet,
    sets: Mapping[str, Split],
    parent: Any = None,
) -> dict[str, Any]:
    """Measure everything; returns the results dict the report is written from."""
    from transformers import AutoTokenizer

    from runner.eval import artifacts
    from runner.eval.loss import encode_all
    from runner.models import resolve_base
    from runner.prompt.template import read_template
    from runner.train.continue_from import merged_parent, read_start

    ev = recipe.eval
    notes = list(dict.fromkeys(checks.notes))
    for split in sets.values():
        if note := split.skip_note():
            notes.append(note)
    base_dir = resolve_base(recipe.model.base, recipe.model.revision)
    train_dir = ctx.require("train")
    start = read_start(train_dir)
    adapter_base = Path(start["base_model"]) if start.get("base_model") else base_dir
    tuned = artifacts.tuned_model(ctx.input("merge"), train_dir, adapter_base)
    template = read_template(train_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tuned.tokenizer_dir))
    parent_dir = merged_parent(parent, base_dir) if parent is not None else None

    models: dict[str, tuple[Path, Path | None]] = {}
    if ev.compare_base:
        models["base"] = (base_dir, None)
    if parent_dir is not None:
        models["parent"] = (parent_dir, None)
    models["tuned"] = (tuned.model_dir, tuned.adapter_dir)

    seq_len = recipe.train.seq_len
    measured: dict[str, dict[str, Any]] = {}
    encoded = {}
    for name, split in sets.items():
        answered = [row for row in split.rows if row.reference is not None]
        encoded[name], skipped = encode_all(
            tokenizer, template, answered, recipe.prompt.train_on, seq_len
        )
        unanswered = len(split.rows) - len(answered)
        if unanswered:
            notes.append(
                f"{unanswered} prompt(s) of {SETS[name]} have no reference answer: no loss "
                "for them, and checks that compare with a reference fail on them"
            )
        measured[name] = {
            "split": split,
            "cases": split.rows[: ev.max_prompts],
            "losses": {},
            "loss_skipped": skipped,
        }
    for side, (model_dir, adapter) in models.items():
        losses = _measure_losses(model_dir, adapter, encoded, side)
        for name, result in losses.items():
            measured[name]["losses"][side] = result

    cases = {name: m["cases"] for name, m in measured.items()}
    infill = (primary_set(sets), _infill_rows(recipe, ctx, notes))
    generated = _generate(
        recipe, ctx, tuned, base_dir, parent_dir, template, tokenizer, cases, notes, infill
    )

    return {
        "sets": measured,
        "primary": primary_set(sets),
        "samples": generated.get("samples", {}),
        "checks": checks,
        "notes": notes,
        "models": {
            "base": str(base_dir),
            **({"parent": str(parent_dir)} if parent_dir is not None else {}),
            "tuned": tuned.describe(),
            **{f"gguf_{k}": str(v) for k, v in generated.get("gguf", {}).items()},
        },
        "parent": parent.describe() if parent is not None else None,
    }


def _measure_losses(
    model_dir: Path, adapter: Path | None, encoded: Mapping[str, list], side: str
) -> dict[str, Any]:
    """One model loaded once, its held-out loss on every set."""
    from rich.progress import Progress

    from runner.eval.loss import heldout_loss, load_model

    model = load_model(model_dir, adapter)
    results = {}
    with Progress(transient=True) as progress:
        for name, items in encoded.items():
            task = progress.add_task(f"held-out loss ({side}, {name})", total=len(items))
            results[name] = heldout_loss(model, items, progress=lambda t=task: progress.advance(t))
    del model
    gc.collect()
    return results


def _generate(
    recipe, ctx, tuned, base_dir, parent_dir, template, tokenizer, cases, notes, infill=("", ())
) -> dict[str, Any]:
    """Answers of the fine-tuned GGUF (and the base and parent converted the same way) to the
    test prompts of every set: one llama.cpp process per model."""
    from rich.console import Console

    from runner.eval import artifacts
    from runner.eval.generate import generate_samples, render_prompts

    max_new = recipe.eval.max_new_tokens
    gguf_dir = ctx.input("gguf")
    chosen = artifacts.choose_gguf(gguf_dir, recipe) if gguf_dir is not None else None
    outtype = artifacts.gguf_outtype(recipe)
    if chosen is None and tuned.adapter_dir is not None:
        notes.append(
            "no GGUF and no merged model in this run: generation checks skipped "
            "(add `- type: merge` and `- type: gguf` under export)"
        )
        return {}
    flat = [(name, case) for name, rows in cases.items() for case in rows]
    if not flat:
        return {}
    qtype = chosen.qtype if chosen else outtype
    prompts = render_prompts(template, [case for _, case in flat])
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
                f"the recipe exports no GGUF: the fine-tuned model was converted to {qtype} here"
            )
        runs: dict[str, tuple[Path, Path | None]] = {}
        if recipe.eval.compare_base:
            # A LoRA export's base GGUF is the base converted the same way; else convert it.
            base = (
                chosen.path
                if chosen.lora
                else artifacts.base_gguf(base_dir, qtype, outtype, log_file=ctx.log_file)
            )
            runs["base"] = (base, None)
        if parent_dir is not None:
            runs["parent"] = (
                artifacts.base_gguf(
                    parent_dir, qtype, outtype, log_file=ctx.log_file, label="parent"
                ),
                None,
            )
        runs["tuned"] = (chosen.path, chosen.lora)
        samples: dict[str, dict[str, list]] = {name: {} for name in cases}
        for side, (path, lora) in runs.items():
            with console.status(
                f"generating {len(flat)} answers with the {side} model ({path.name})"
            ):
                answers = generate_samples(
                    path,
                    template,
                    [case for _, case in flat],
                    max_new_tokens=max_new,
                    n_ctx=n_ctx,
                    lora=lora,
                )
            for (name, _), sample in zip(flat, answers, strict=True):
                samples[name].setdefault(side, []).append(sample)
            infill_set, infill_rows = infill
            if infill_rows and infill_set in samples:
                from runner.eval.checks.fim import infill_samples

                # The held-out infill rows are judged with the set the gate reads.
                samples[infill_set].setdefault(side, []).extend(
                    infill_samples(path, infill_rows, tokenizer, max_new_tokens=max_new, lora=lora)
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


def _loss_row(losses: Mapping[str, Any], skipped: list) -> dict[str, Any]:
    from runner.eval.score import side_by_side

    row = side_by_side({side: r.loss for side, r in losses.items()}, lower_is_better=True)
    tuned = losses.get("tuned")
    row["perplexity"] = {side: r.perplexity for side, r in losses.items()}
    row["tokens"] = tuned.tokens if tuned else 0
    row["examples"] = tuned.examples if tuned else 0
    row["skipped"] = skipped
    return row


def score_set(
    recipe: Recipe, checks: CheckSet, measured: Mapping[str, Any], samples: Mapping[str, list]
) -> dict[str, Any]:
    """Every number of one test set: loss, pass rates (per check, per group), answer times."""
    from runner.eval.groups import group_key, group_rates
    from runner.eval.score import compare, latency, pass_rates, run_checks, side_by_side

    check_results = {side: run_checks(checks, s) for side, s in samples.items()}
    rates = {side: pass_rates(r, checks.labels) for side, r in check_results.items()}
    comparison = compare(rates, checks.labels) if rates else {}
    groups: dict[str, Any] = {}
    group_by = recipe.eval.group_by
    if group_by and samples:
        key = group_key(group_by)
        per_side = {
            side: group_rates(s, check_results[side], checks.labels, key)
            for side, s in samples.items()
        }
        names = sorted({g for rates_of in per_side.values() for g in rates_of})
        for group in names:
            groups[group] = side_by_side(
                {side: (per_side[side].get(group) or {}).get("overall") for side in per_side}
            )
            groups[group]["samples"] = max(
                (per_side[side].get(group) or {}).get("samples", 0) for side in per_side
            )
            groups[group]["checks"] = {
                label: side_by_side(
                    {
                        side: ((per_side[side].get(group) or {}).get("checks") or {}).get(label)
                        for side in per_side
                    }
                )
                for label in checks.labels
            }
    split: Split = measured["split"]
    return {
        "path": str(split.path),
        "cases": len(split.rows),
        "generated": len(measured["cases"]) if samples else 0,
        "skipped": split.skipped,
        "loss": _loss_row(measured["losses"], measured["loss_skipped"]),
        "pass_rate": comparison.get("pass_rate"),
        "checks": comparison.get("checks", {}),
        "groups": groups,
        "latency": {side: latency(s) for side, s in samples.items()},
        "_results": check_results,
    }


def write_outputs(recipe: Recipe, ctx: StageContext, results: dict[str, Any]) -> dict[str, Any]:
    """results.json, samples.jsonl, pictures and the report; returns what the report shows."""
    from runner.eval import history
    from runner.eval.report import write_report
    from runner.eval.score import most_different

    out: Path = ctx.out
    out.mkdir(parents=True, exist_ok=True)
    checks: CheckSet = results["checks"]
    all_samples = results.get("samples") or {}
    scored = {
        name: score_set(recipe, checks, measured, all_samples.get(name, {}))
        for name, measured in results["sets"].items()
    }
    primary = results["primary"]
    main = scored[primary]
    samples = all_samples.get(primary, {})
    sides = [s for s in ("base", "parent", "tuned") if s in results["sets"][primary]["losses"]]
    sides = sides or [s for s in ("base", "parent", "tuned") if s in samples]
    other = "parent" if "parent" in samples else "base"
    differences = []
    if other in samples and "tuned" in samples:
        differences = most_different(
            samples[other],
            samples["tuned"],
            main["_results"][other],
            main["_results"]["tuned"],
            names=(other, "tuned"),
        )
    data_report = history.read_data_report(ctx.require("data"))
    split: Split = results["sets"][primary]["split"]
    public = {name: {k: v for k, v in s.items() if k != "_results"} for name, s in scored.items()}
    # The held-out loss needs reference answers: a fixed test set of bare prompts has none, and
    # then the split's test rows give it.
    loss_set = primary
    if main["loss"].get("tuned") is None and "test" in scored:
        loss_set = "test"
    metrics = {
        "loss": {**scored[loss_set]["loss"], "set": loss_set},
        "pass_rate": main["pass_rate"],
        "checks": main["checks"],
        "groups": main["groups"],
        "latency": main["latency"],
        "sets": public,
    }
    fim = _fim_summary(samples)
    gate = recipe.eval.gate
    failures = gate_failures(gate, metrics)
    summary = {
        "recipe": {"name": recipe.name, "stage_key": ctx.key, "path": str(recipe.path)},
        "data": {
            "counts": history.data_counts(data_report),
            "test_cases": len(split.rows),
            "test_rows_skipped": split.skipped,
        },
        "primary": primary,
        "sides": sides,
        "group_by": recipe.eval.group_by,
        "generated": main["generated"],
        **{k: metrics[k] for k in ("loss", "pass_rate", "checks", "groups", "latency")},
        "sets": public,
        "differences": differences,
        "models": results["models"],
        "parent": results.get("parent"),
        "gate": {"thresholds": gate.thresholds(), "passed": not failures, "failures": failures},
        **({"fim": fim} if fim else {}),
        "notes": results["notes"],
        "outputs": ["results.json", "samples.jsonl", "report.md", "report.html"],
    }
    with (out / "samples.jsonl").open("w", encoding="utf-8") as handle:
        for name, by_side in all_samples.items():
            for side, side_samples in by_side.items():
                for sample, res in zip(side_samples, scored[name]["_results"][side], strict=True):
                    row = {
                        "set": name,
                        "model": side,
                        "id": sample.id,
                        "prompt": sample.messages,
                        "reference": sample.reference,
                        "answer": sample.answer,
                        "finish_reason": sample.finish_reason,
                        "seconds": sample.seconds,
                        "tokens": sample.tokens,
                        "meta": sample.meta,
                        "checks": {k: vars(v) for k, v in res.items()},
                    }
                    handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    per_example = {
        name: {side: r.per_example for side, r in m["losses"].items()}
        for name, m in results["sets"].items()
    }
    (out / "results.json").write_text(
        json.dumps({**summary, "loss_per_example": per_example}, indent=2, default=str) + "\n"
    )
    images = draw_pictures(ctx, {"pass_rate": main["pass_rate"], "checks": main["checks"]}, out)
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
    if comparison.get("pass_rate"):
        images["pass_rates.png"] = plots.pass_rate_bars(comparison, out / "pass_rates.png")
    return images
