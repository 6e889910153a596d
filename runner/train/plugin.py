"""recipe-runner's checks inside Axolotl's own training process (an Axolotl plugin).

The train stage writes ``plugins: [runner.train.plugin.RecipeRunnerChecks]`` into the Axolotl
config and a small settings file next to it; ``axolotl train`` then loads this class, so the
checks run on what Axolotl really built, with no second Axolotl process (a separate
``axolotl preprocess`` cost about 25 s of imports a run):

- when Axolotl reads the config (``register``): every key is one Axolotl knows (it drops the
  others silently) and passes Axolotl's own validation; `datasets` is made to fingerprint the
  tokenizer cheaply (``hash_tokenizers_quickly``) and to write a small prepared split without a
  process pool (``save_datasets_in_process``) before Axolotl tokenizes anything;
- once the trainer exists (``post_trainer_create``): the masked template tokens between an answer
  and its trained end-of-turn token are trained too (Axolotl trains the end token alone), then
  every trained turn of the tokenized training rows must end on a trained end-of-turn token, or
  the model would never learn to stop (axolotl-ai-cloud/axolotl#1608). Rows Axolotl dropped for
  being longer than ``sequence_len`` are counted;
- while it trains (``add_callbacks_post_trainer``): one ``STEP_LINE`` per optimizer step with the
  step, the total and an ETA, which the stage reads for its progress. The trainer's own tqdm bar
  is off whenever its logging is quieter than WARNING (``TRANSFORMERS_VERBOSITY=error``, which
  keeps the terminal clean), so progress cannot rely on it.

The verdict is written to ``RESULT`` in the output folder before training starts; a failed check
raises, which ends Axolotl before its first step, and the stage reports the written reason.
Only Axolotl imports this module.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from axolotl.integrations.base import BasePlugin

from runner.train.check import check_axolotl_keys
from runner.train.handshake import RESULT, SETTINGS, STEP_LINE
from runner.train.labels import check_labels, fill_end_gaps


class RecipeRunnerChecks(BasePlugin):
    """Config keys when Axolotl loads the config; labels once the trainer is built."""

    def register(self, cfg: dict) -> None:
        hash_tokenizers_quickly()
        save_datasets_in_process()
        # `axolotl train` adds its command-line options (debug, shard, prompter...) and the
        # config's path before plugins see it; those are Axolotl's own, not ours to check.
        from dataclasses import fields

        from axolotl.cli.args import TrainerCliArgs

        cli = {f.name for f in fields(TrainerCliArgs)} | {"axolotl_config_path"}
        problems = check_axolotl_keys({k: v for k, v in dict(cfg).items() if k not in cli})
        if problems:
            _write(cfg, {"config_problems": problems})
            raise RuntimeError("the Axolotl config has problems: " + "; ".join(problems))

    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        settings = _settings(cfg)
        end_ids = set(settings["end_ids"])
        filled = 0
        for attribute in ("train_dataset", "eval_dataset"):
            dataset = getattr(trainer, attribute, None)
            if dataset is None or "labels" not in dataset.column_names:
                continue
            dataset, count = _fill(dataset, end_ids)
            setattr(trainer, attribute, dataset)
            filled += count
        train = trainer.train_dataset
        rows = train.select_columns(["input_ids", "labels"])
        report = check_labels(((r["input_ids"], r["labels"]) for r in rows), end_ids)
        examples = settings.get("train_examples")
        result = {
            "filled": filled,
            "rows": report.rows,
            "trained_turns": report.trained_turns,
            "dropped_over_length": max(0, examples - len(train)) if examples else 0,
            "problem": report.problem(),
        }
        _write(cfg, result)
        if result["problem"]:
            raise RuntimeError(result["problem"])

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list:
        return [_step_lines()]


# A tokenizer's tables kept as Python objects next to the Rust tokenizer built from them
# (transformers 5: `_vocab`, `_merges`).
_TOKENIZER_TABLES = ("_vocab", "_merges")


def hash_tokenizers_quickly() -> None:
    """Make `datasets` fingerprint a tokenizer in a fraction of a second instead of seconds.

    Every ``Dataset.map`` hashes its function to name its cache, and Axolotl's tokenizing
    function holds the tokenizer: `datasets` pickles it with its own pure-Python pickler, which
    sorts every dict and memoizes nothing, so Qwen's 151k-entry vocabulary and merge list cost
    2.5 s per map (two maps per dataset file: a third of the quickstart's train stage). Here
    those two tables are replaced, for the hash only, by the SHA-256 of their standard pickle:
    the fingerprint still changes whenever a token, a merge or any other attribute does, and
    `datasets`' own handling of the rest (the Rust tokenizer's state, truncation and padding
    switched off while hashing) is unchanged. A no-op where `datasets` hashes tokenizers some
    other way.
    """
    import hashlib
    import pickle

    try:
        from datasets.utils import _dill
    except ImportError:
        return
    original = getattr(_dill, "_save_transformersPreTrainedTokenizerBase", None)
    if original is None or getattr(original, "recipe_runner", False):
        return

    def save(pickler: Any, obj: Any) -> None:
        state = obj.__dict__
        tables = [k for k in _TOKENIZER_TABLES if isinstance(state.get(k), (dict, list))]
        if not tables:
            return original(pickler, obj)
        light = object.__new__(type(obj))
        light.__dict__.update(state)
        for key in tables:
            digest = hashlib.sha256(pickle.dumps(state[key], protocol=4)).hexdigest()
            light.__dict__[key] = f"sha256:{digest}"
        return original(pickler, light)

    save.recipe_runner = True  # type: ignore[attr-defined]
    save.original = original  # type: ignore[attr-defined]
    _dill._save_transformersPreTrainedTokenizerBase = save
    # `datasets` registers the function per tokenizer class the first time it meets one.
    dispatch = _dill.Pickler.dispatch
    for cls in [c for c, saver in dispatch.items() if saver is original]:
        dispatch[cls] = save


def save_datasets_in_process() -> None:
    """Make ``Dataset.save_to_disk(num_proc=1)`` write in this process.

    Axolotl saves each prepared split with ``num_proc=min(max(1, rows // 256), workers)``, so 1
    for a small dataset, and `datasets` (4.x) starts a *spawned* pool for any num_proc >= 1: a
    fresh interpreter importing `datasets` to write one shard, 4 s per split on 2 cores. With
    one process `datasets` writes the same shard itself.
    """
    import functools

    from datasets import Dataset

    original = Dataset.save_to_disk
    if getattr(original, "recipe_runner", False):
        return

    @functools.wraps(original)
    def save_to_disk(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("num_proc") == 1:
            kwargs["num_proc"] = None
        return original(self, *args, **kwargs)

    save_to_disk.recipe_runner = True  # type: ignore[attr-defined]
    Dataset.save_to_disk = save_to_disk


def _step_lines() -> Any:
    from transformers import TrainerCallback

    class StepLines(TrainerCallback):
        """Print ``STEP_LINE`` after every optimizer step (on the main process only)."""

        def __init__(self) -> None:
            self.started: tuple[float, int] | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = (time.monotonic(), state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if not state.is_world_process_zero or not state.max_steps:
                return
            began, first = self.started or (time.monotonic(), 0)
            done = state.global_step - first
            left = state.max_steps - state.global_step
            eta = _clock((time.monotonic() - began) / done * left) if done > 0 else "?"
            print(
                STEP_LINE.format(step=state.global_step, total=state.max_steps, eta=eta), flush=True
            )

    return StepLines()


def _clock(seconds: float) -> str:
    """``MM:SS`` or ``H:MM:SS``, as tqdm writes its remaining time."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _fill(dataset: Any, end_ids: set[int]) -> tuple[Any, int]:
    counts = [
        fill_end_gaps(row["labels"], row["input_ids"], end_ids)[1]
        for row in dataset.select_columns(["input_ids", "labels"])
    ]
    if not any(counts):
        return dataset, 0

    def fill(row: dict) -> dict:
        return {"labels": fill_end_gaps(row["labels"], row["input_ids"], end_ids)[0]}

    return dataset.map(fill, features=dataset.features, load_from_cache_file=False), sum(counts)


def _folder(cfg: Any) -> Path:
    return Path(cfg.get("output_dir") or ".")


def _settings(cfg: Any) -> dict[str, Any]:
    return json.loads((_folder(cfg) / SETTINGS).read_text(encoding="utf-8"))


def _write(cfg: Any, result: dict[str, Any]) -> None:
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return
    path = _folder(cfg) / RESULT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
