"""What a user reads when `recipe run` ends: where everything is and what to do next.

Built from the run's result (each stage's outputs and summary), so it says only what this run
produced: the run folder, the GGUF files with their sizes, the Modelfile with the exact
`ollama create` command, the headline evaluation numbers base -> fine-tuned, the report, and
the next commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runner.paths import display_path


def _size(path: str) -> str:
    try:
        n = float(os.path.getsize(path))
    except OSError:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def _pair(values: dict[str, Any] | None, fmt: str) -> str | None:
    if not values or values.get("tuned") is None:
        return None
    tuned = format(values["tuned"], fmt)
    if values.get("base") is None:
        return tuned
    return f"{format(values['base'], fmt)} -> {tuned}"


def summary_lines(result: Any) -> list[str]:
    """The end-of-run summary of a ``PipelineResult``."""
    stages = {s.stage: s for s in result.stages}
    lines = [f"run folder: {display_path(result.run_dir)}"]
    data = stages.get("data")
    if data and data.summary.get("counts"):
        counts = data.summary["counts"]
        split = " / ".join(f"{counts.get(k, 0)} {k}" for k in ("train", "val", "test"))
        rejected = data.summary.get("rejected", 0)
        lines.append(f"data: {split} examples, {rejected} rejected (report: data/report.md)")
    train = stages.get("train")
    if train and train.summary.get("last_loss") is not None:
        first, last = train.summary.get("first_loss"), train.summary["last_loss"]
        lines.append(
            f"training: {train.summary.get('steps')} steps, loss {first:.3f} -> {last:.3f}"
            if first is not None
            else f"training: {train.summary.get('steps')} steps, last loss {last:.3f}"
        )
    gguf = stages.get("gguf")
    if gguf and gguf.outputs:
        files = ", ".join(f"{Path(p).name} ({_size(p)})" for p in gguf.outputs.values())
        lines.append(f"GGUF: {files}")
    ollama = stages.get("ollama")
    for model in ollama.summary.get("models", []) if ollama else []:
        lines.append(f"Ollama: {model['create_command']}")
        if model.get("created"):
            lines.append(f"  created: ollama run {model['model']}")
    smoke = stages.get("smoke")
    if smoke and smoke.summary.get("models"):
        models = smoke.summary["models"].items()
        stopped = [f"{kind} {m['stopped']}/{m['answers']}" for kind, m in models]
        if smoke.summary.get("stop_test") == "reference":
            ends = [
                f"{kind} {m.get('ends_after_reference', 0)}/{m['answers']}" for kind, m in models
            ]
            lines.append(
                "smoke test: turns end where the reference answers end: "
                f"{', '.join(ends)} (greedy answers stopped: {', '.join(stopped)})"
            )
        else:
            lines.append(f"smoke test: answers stopped on their end token: {', '.join(stopped)}")
    evaluation = stages.get("eval")
    if evaluation and evaluation.summary:
        s = evaluation.summary
        numbers = []
        if loss := _pair(s.get("loss"), ".3f"):
            numbers.append(f"held-out loss {loss}")
        if rate := _pair(s.get("pass_rate"), ".0%"):
            numbers.append(f"pass rate {rate}")
        if numbers:
            lines.append("eval (base -> fine-tuned): " + ", ".join(numbers))
        gate = s.get("gate") or {}
        if gate.get("thresholds"):
            lines.append(f"gate: {'passed' if gate.get('passed') else 'MISSED'}")
        report = evaluation.outputs.get("report.html") or evaluation.outputs.get("report.md")
        if report:
            lines.append(f"report: {display_path(report)}")
    lines += next_steps(result, stages)
    return lines


def next_steps(result: Any, stages: dict[str, Any]) -> list[str]:
    steps = []
    gguf = stages.get("gguf")
    full = [
        p for k, p in (gguf.outputs.items() if gguf else []) if not k.startswith(("lora-", "base-"))
    ]
    if full:
        quantized = next((p for p in full if "q4_k_m" in p), full[-1])
        steps.append(f"try it: llama-cli -m {display_path(quantized)} -cnv")
    if "eval" in stages:
        steps.append(f"read the evaluation: recipe report {display_path(result.run_dir)}")
    if not stages.get("train"):
        steps.append("train: recipe run RECIPE (finished stages are reused)")
    return ["next:", *(f"  {s}" for s in steps)] if steps else []
