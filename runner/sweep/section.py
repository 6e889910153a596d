"""`sweep:`: try several values of recipe keys and keep the best run (``recipe sweep RECIPE``).

Declared here, beside the code that runs it (``runner/sweep/run.py``); assembled into ``Recipe``
by ``runner/recipe/schema.py``. Everything in this module is pure: the trials' overrides, the
grid and the metric read from a finished run are plain functions of the section, so the loader's
rules and the tests use them without Optuna.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, WithJsonSchema, field_validator

from runner.recipe.fields import Section, Seed


class Uniform(Section):
    """A float drawn evenly between two bounds."""

    uniform: tuple[float, float]
    """`[low, high]`."""


class LogUniform(Section):
    """A positive float drawn evenly on a log scale (learning rates)."""

    log_uniform: tuple[float, float]
    """`[low, high]`, both above 0."""

    @field_validator("log_uniform")
    @classmethod
    def _positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] <= 0 or value[1] <= 0:
            raise ValueError("bounds must be above 0")
        return value


class IntRange(Section):
    """An integer between two bounds, both included."""

    int_: tuple[int, int] = Field(alias="int")
    """`[low, high]`."""


RANGES = {"uniform": Uniform, "log_uniform": LogUniform, "int": IntRange}
_BOUNDS = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
SPACE_SCHEMA = {
    "anyOf": [
        {"type": "array", "minItems": 1, "description": "values to try"},
        *(
            {
                "type": "object",
                "properties": {name: _BOUNDS},
                "required": [name],
                "additionalProperties": False,
            }
            for name in RANGES
        ),
    ]
}


# YAML 1.1 (PyYAML) reads `1e-5` as text (it wants `1.0e-5`); Meton's loop is
# `for lr in 1e-5 5e-5 1e-4`, so a listed value written as a number is one.
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _FLOAT.fullmatch(value) else value


def parse_space(value: Any) -> tuple[Any, ...] | Uniform | LogUniform | IntRange:
    """One swept key's values: a non-empty list, or a mapping naming one range."""
    if isinstance(value, Uniform | LogUniform | IntRange):
        return value
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("list at least one value")
        return tuple(_number(v) for v in value)
    if isinstance(value, Mapping):
        kinds = [k for k in RANGES if k in value]
        if len(kinds) != 1 or len(value) != 1:
            raise ValueError(
                f"{dict(value)!r} is not a range: write one of {{uniform: [a, b]}}, "
                "{log_uniform: [a, b]}, {int: [a, b]}"
            )
        try:
            return RANGES[kinds[0]].model_validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ValueError(f"{kinds[0]}: {message} (got {value[kinds[0]]!r})") from None
    raise ValueError(f"{value!r} is neither a list of values nor a range")


class StopEarlySection(Section):
    """`sweep.stop_early:`: stop a trial whose validation loss, as Axolotl logs it during
    training (every `train.eval_steps`), is worse than the other trials' at the same step."""

    pruner: Literal["median", "percentile", "hyperband"] = "median"
    """Optuna's pruner: `median` stops a trial worse than the median of the earlier trials at the
    same step, `percentile` worse than the given percentile, `hyperband` by successive halving."""
    percentile: float = Field(25.0, gt=0, lt=100)
    """For `pruner: percentile`: the share of trials a trial must be among the best of."""
    startup_trials: int = Field(1, ge=0)
    """Trials that always run to the end, to give the pruner something to compare with."""
    warmup_steps: int = Field(0, ge=0)
    """Training steps before a trial can be stopped."""


class SweepSection(Section):
    """`sweep:`: the recipe keys to vary, how to search them, and the number that decides."""

    params: Annotated[
        dict[str, Any], WithJsonSchema({"type": "object", "additionalProperties": SPACE_SCHEMA})
    ] = {}
    """Dotted recipe keys (`train.learning_rate`) mapped to a list of values or a range
    (`{uniform: [a, b]}`, `{log_uniform: [a, b]}`, `{int: [a, b]}`)."""
    paired: tuple[dict[str, Any], ...] = ()
    """Values that go together, one mapping per choice (`{lora.r: 8, lora.alpha: 16}`)."""
    method: Literal["grid", "random", "tpe"] = "grid"
    """`grid` tries every combination of the lists in the written order; `random` and `tpe`
    (Optuna's Bayesian sampler) draw `max_trials` points, ranges included."""
    max_trials: int | None = Field(None, ge=1)
    """At most this many trials (every grid combination when not set)."""
    metric: str = "eval.held_out_loss"
    """The number that ranks trials: `eval.held_out_loss`, `eval.pass_rate`,
    `eval.checks.<check>`, `eval.seconds_per_answer`, `eval.loss_improvement`,
    `train.last_loss`, or any dotted number in the eval stage's summary (`eval.sets.test.loss.tuned`)."""
    direction: Literal["minimize", "maximize"] | None = None
    """Default: minimize losses and times, maximize everything else."""
    parallel: int = Field(1, ge=1)
    """Trials at once, each in its own process (one GPU each when there are GPUs)."""
    stop_early: StopEarlySection | bool = False
    """Stop hopeless trials early (`true` or a mapping of pruner settings)."""
    promote: Literal["best", "none"] = "best"
    """`best` runs the winning trial again with the recipe's exports (trials export nothing
    but the merged model the evaluation needs)."""
    storage: str | None = None
    """An Optuna RDB URL (`postgresql://...`, `sqlite:///...`) to share a study across machines;
    default: a journal file in the sweep's folder (no server)."""
    seed: Seed = 42
    """Seed of the `random` and `tpe` samplers."""

    @field_validator("params", mode="before")
    @classmethod
    def _spaces(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # pydantic says it is not a mapping
        spaces, problems = {}, []
        for key, space in value.items():
            try:
                spaces[key] = parse_space(space)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return spaces

    def pruning(self) -> StopEarlySection | None:
        """The pruner settings, or None when trials always run to the end."""
        if self.stop_early is True:
            return StopEarlySection()
        return self.stop_early or None

    def goal(self) -> str:
        """``minimize`` or ``maximize``."""
        return self.direction or default_direction(self.metric)

    def swept_keys(self) -> list[str]:
        """Every swept key, params first, then the paired ones, in written order."""
        paired = [k for choice in self.paired for k in choice]
        return list(dict.fromkeys([*self.params, *paired]))


def default_direction(metric: str) -> str:
    last = metric.rsplit(".", 1)[-1]
    return "minimize" if "loss" in last or "seconds" in last else "maximize"


# -- trials as overrides ------------------------------------------------------------------------
PAIRED = "paired"


def overrides(values: Mapping[str, Any]) -> list[str]:
    """``--set`` texts for one trial's values (``{"train.learning_rate": 1e-4}``): each value as
    JSON, which the loader reads as YAML and types by the key's schema."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def expand(section: SweepSection, chosen: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's recipe values from its Optuna parameters (``paired`` is an index)."""
    values = {k: v for k, v in chosen.items() if k != PAIRED}
    if PAIRED in chosen and section.paired:
        values.update(section.paired[int(chosen[PAIRED])])
    return values


def grid(section: SweepSection) -> Iterator[dict[str, Any]]:
    """Every combination of the listed values (and paired choices), in the written order: the
    first value of the first key first. Ranges have no grid (a rule refuses them)."""
    lists = {k: list(v) for k, v in section.params.items() if isinstance(v, tuple)}
    axes = list(lists.values())
    if section.paired:
        axes.append(list(range(len(section.paired))))
    names = [*lists, *([PAIRED] if section.paired else [])]
    for combo in itertools.product(*axes):
        yield dict(zip(names, combo, strict=True))


def grid_size(section: SweepSection) -> int:
    size = math.prod(len(v) for v in section.params.values() if isinstance(v, tuple))
    return size * (len(section.paired) or 1)


def trial_budget(section: SweepSection) -> int:
    """How many trials the sweep runs in all."""
    if section.method == "grid":
        return min(grid_size(section), section.max_trials or grid_size(section))
    return section.max_trials or 0


# -- the metric ---------------------------------------------------------------------------------
# Friendly names -> the stage and the path in its summary (runner.run.context.Outcome.summary).
METRICS: dict[str, tuple[str, ...]] = {
    "eval.held_out_loss": ("eval", "loss", "tuned"),
    "eval.loss_improvement": ("eval", "loss", "improvement"),
    "eval.pass_rate": ("eval", "pass_rate", "tuned"),
    "eval.seconds_per_answer": ("eval", "latency", "tuned", "mean_seconds"),
    "eval.tokens_per_second": ("eval", "latency", "tuned", "tokens_per_second"),
    "train.last_loss": ("train", "last_loss"),
    "train.first_loss": ("train", "first_loss"),
    "train.eval_loss": ("train", "last_eval_loss"),
}
METRIC_STAGES = ("eval", "train")


def metric_path(metric: str) -> tuple[str, ...]:
    """The stage and summary path a metric name reads (``eval.checks.syntax`` -> the fine-tuned
    pass rate of that check)."""
    if metric in METRICS:
        return METRICS[metric]
    return tuple(metric.split("."))


def metric_value(metric: str, summaries: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The metric's value from the stages' summaries of a finished run (None when the run did
    not measure it). A mapping with a ``tuned`` entry (base vs fine-tuned pairs) gives that."""
    node: Any = summaries
    for part in metric_path(metric):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, Mapping):
        node = node.get("tuned")
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node) if math.isfinite(node) else None
