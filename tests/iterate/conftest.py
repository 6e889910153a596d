"""Fixtures for the iterate tests (sweeps, continue_from, versions, comparisons): instruction
files, and a parent run folder assembled from real parts (a data stage output and a LoRA adapter
fitted with peft by the eval tests' fixture) for the tests that need a parent but no training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.eval.conftest import fitted_adapter, tiny_base  # noqa: F401 (fixtures)


def write_instructions(path: Path, prefix: str, n: int, **meta) -> Path:
    """``n`` Alpaca rows whose texts differ (``prefix`` keeps two files apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "instruction": f"{prefix} question {i}: add {i} to x",
            "output": f"def {prefix}_{i}(x):\n    return x + {i}  # {prefix} answer {i}",
            **({"metadata": {k: v[i % len(v)] for k, v in meta.items()}} if meta else {}),
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_parent_run(folder: Path, data_dir: Path, adapter: Path, **recipe) -> Path:
    """A parent run folder as the pipeline leaves it: run.lock.json, lineage.json, and data/
    and train/ (a real adapter) linked in."""
    run = folder / "parent" / "0123456789"
    run.mkdir(parents=True)
    (run / "data").symlink_to(data_dir)
    from runner.prompt.template import load_template, save_template

    train = folder / "parent-train"
    shutil.copytree(adapter, train)
    save_template(load_template("chatml", train), train)  # as the train stage leaves it
    (run / "train").symlink_to(train)
    lock = {
        "run": run.name,
        "recipe_name": "parent",
        "recipe": {"name": "parent", "version": "v1", "model": {"base": "tiny:qwen2"}, **recipe},
        "stages": {"data": "d" * 64, "train": "t" * 64},
    }
    (run / "run.lock.json").write_text(json.dumps(lock))
    (run / "lineage.json").write_text(json.dumps({"name": "parent", "version": "v1"}))
    return run


@pytest.fixture
def parent_run(tmp_path, fitted_adapter, tokens):  # noqa: F811
    """A parent run whose data stage really ran (40 'old' rows, 80/10/10)."""
    from runner.data.build import run as build
    from runner.run.context import StageContext
    from tests.helpers import recipe_of

    source = write_instructions(tmp_path / "old.jsonl", "old", 40)
    recipe = recipe_of(
        {
            "name": "parent",
            "sources": [{"type": "instructions", "path": str(source)}],
            "split": {"train": 0.8, "val": 0.1, "test": 0.1},
            "prompt": {"template": "chatml", "system": "You are the old assistant."},
            "train": {"seq_len": 256},
        },
        tmp_path,
    )
    ctx = StageContext(stage="data", out=tmp_path / "parent-data", run_dir=tmp_path)
    build(recipe, ctx, tokens=tokens, progress=False)
    return make_parent_run(tmp_path, ctx.out, fitted_adapter)


@pytest.fixture(scope="session")
def tokens():
    from tokenizers import Tokenizer

    from runner.data.tokenizer import TokenCounter
    from tests.data.conftest import tokenizer_json

    return TokenCounter(Tokenizer.from_file(str(tokenizer_json("qwen2"))))


def evaluated_run(
    root: Path,
    name: str,
    version: str | None,
    rows: list[dict],
    answers: dict[str, list[tuple[str, str, float]]],
    eval_section: dict | None = None,
) -> tuple[Path, dict]:
    """A run folder (and its eval summary) whose eval/ was written by the real report code (``write_outputs``) from the
    given answers: side -> [(answer, finish_reason, seconds)] per test row."""
    from runner.dataset import read_split, with_prompts
    from runner.eval.checks import Sample, build_checks
    from runner.eval.loss import LossResult
    from runner.eval.stage import write_outputs
    from runner.pipeline import view
    from tests.helpers import recipe_of, stage_context

    run = root / name / f"{abs(hash((name, version))) % 10**10:010d}"
    (run / "data").mkdir(parents=True)
    (run / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "train").mkdir()
    config = {"name": name, "version": version, "eval": eval_section or {}}
    recipe = recipe_of(config, root / f"{name}-recipe")
    ctx = stage_context(run, "eval", run / "eval")
    split = with_prompts(read_split(run / "data", "test"))
    checks = build_checks(recipe.eval.checks, allow_commands=False)
    samples = {
        side: [
            Sample(c.id, c.prompt, c.reference, text, finish, c.meta, seconds, len(text.split()))
            for c, (text, finish, seconds) in zip(split.rows, given, strict=True)
        ]
        for side, given in answers.items()
    }
    losses = {side: LossResult(2.0 - i, None, 10, len(rows)) for i, side in enumerate(answers)}
    results = {
        "sets": {
            "test": {"split": split, "cases": split.rows, "losses": losses, "loss_skipped": []}
        },
        "primary": "test",
        "checks": checks,
        "notes": [],
        "samples": {"test": samples},
        "models": {},
    }
    summary = write_outputs(view(recipe, "eval"), ctx, results)
    (run / "run.lock.json").write_text(
        json.dumps({"run": run.name, "recipe_name": name, "recipe": {"version": version}})
    )
    (run / "lineage.json").write_text(json.dumps({"name": name, "version": version}))
    return run, summary


def prompt_rows(n: int, **meta_values) -> list[dict]:
    """Canonical test rows: 'Say <word>' -> '<word>', with metadata cycling through values."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return [
        {
            "id": f"p{i}",
            "messages": [
                {"role": "user", "content": f"Say {words[i]}."},
                {"role": "assistant", "content": words[i]},
            ],
            "meta": {k: v[i % len(v)] for k, v in meta_values.items()},
        }
        for i in range(n)
    ]
