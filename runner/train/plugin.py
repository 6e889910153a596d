"""recipe-runner's checks inside Axolotl's own training process (an Axolotl plugin).

The train stage writes ``plugins: [runner.train.plugin.RecipeRunnerChecks]`` into the Axolotl
config and a small settings file next to it; ``axolotl train`` then loads this class, so the
checks run on what Axolotl really built, with no second Axolotl process (a separate
``axolotl preprocess`` cost about 25 s of imports a run):

- when Axolotl reads the config (``register``): every key is one Axolotl knows (it drops the
  others silently) and passes Axolotl's own validation;
- once the trainer exists (``post_trainer_create``): the masked template tokens between an answer
  and its trained end-of-turn token are trained too (Axolotl trains the end token alone), then
  every trained turn of the tokenized training rows must end on a trained end-of-turn token, or
  the model would never learn to stop (axolotl-ai-cloud/axolotl#1608). Rows Axolotl dropped for
  being longer than ``sequence_len`` are counted.

The verdict is written to ``RESULT`` in the output folder before training starts; a failed check
raises, which ends Axolotl before its first step, and the stage reports the written reason.
Only Axolotl imports this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from axolotl.integrations.base import BasePlugin

from runner.train.check import check_axolotl_keys
from runner.train.labels import check_labels, fill_end_gaps

SETTINGS = "runner_checks.json"
RESULT = "runner_checks.result.json"
PLUGIN = f"{__name__}.RecipeRunnerChecks"


class RecipeRunnerChecks(BasePlugin):
    """Config keys when Axolotl loads the config; labels once the trainer is built."""

    def register(self, cfg: dict) -> None:
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
