"""Generation checks, registered under the ``type:`` a recipe's ``eval.checks`` entries name.

A check looks at one generated answer (with its prompt, the reference answer from the test split
and how generation ended) and says pass or fail, always with a reason a person can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.errors import UserError
from runner.recipe.fields import Operation
from runner.registry import Registry

CHECKS = Registry("check")


@dataclass
class Sample:
    """One test prompt answered by one model."""

    id: str
    messages: list[dict[str, str]]  # the prompt turns, without the reference answer
    reference: str | None  # the test split's assistant answer (None: a prompt without one)
    answer: str  # what the model generated
    finish_reason: str = "stop"  # "stop" (an end token or stop string) or "length"
    meta: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # wall time of the answer through llama.cpp
    tokens: int | None = None  # tokens generated

    @property
    def language(self) -> str | None:
        return self.meta.get("language")


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    reason: str


class Check:
    """Base of every check: built once from its recipe entry, then called on each sample."""

    type_name = "check"
    label_suffix = ""  # "#2" for the second check of the same type in one recipe
    Options = Operation

    def __init__(self, options: Any):
        self.options = options

    @property
    def label(self) -> str:
        return self.type_name + self.label_suffix

    def applies(self, sample: Sample) -> bool:
        """Whether this check judges ``sample``: chat answers, not infill middles (the
        ``fim`` check judges those)."""
        return sample.meta.get("format") != "fim"

    def __call__(self, sample: Sample) -> CheckResult:
        raise NotImplementedError


@dataclass
class CheckSet:
    """The checks of one recipe, each with a unique label (``forbid``, ``forbid#2``...)."""

    checks: list[Check]
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.checks]

    def run(self, sample: Sample) -> dict[str, CheckResult]:
        """Every check on one sample; a check that crashes fails with the error as its reason."""
        results = {}
        for check in self.checks:
            if not check.applies(sample):
                continue
            try:
                results[check.label] = check(sample)
            except UserError:
                raise
            except Exception as exc:  # a bug in one check must not hide the others' results
                results[check.label] = CheckResult(False, f"check error: {exc}")
        return results


def build_checks(specs: Sequence[Any], *, allow_commands: bool) -> CheckSet:
    """Instantiate the recipe's ``eval.checks`` (their validated options).

    ``command`` checks run programs named in a recipe, and recipes are shared between projects:
    unless ``eval.allow_commands`` is true this refuses at the start of the stage, before any
    model is loaded, instead of silently skipping the check.
    """
    if not allow_commands:
        commands = [i for i, s in enumerate(specs) if s.type == "command"]
        if commands:
            where = ", ".join(f"eval.checks[{i}]" for i in commands)
            raise UserError(
                f"{where}: `command` checks run programs from the recipe, and eval.allow_commands "
                "is false; review the commands and set `eval.allow_commands: true` (or pass "
                "--set eval.allow_commands=true) to allow them for this recipe"
            )
    checks: list[Check] = []
    seen: dict[str, int] = {}
    for spec in specs:
        cls = CHECKS.get(spec.type)
        kwargs = {"allowed": allow_commands} if spec.type == "command" else {}
        check = cls(spec, **kwargs)
        seen[check.type_name] = seen.get(check.type_name, 0) + 1
        if seen[check.type_name] > 1:
            check.label_suffix = f"#{seen[check.type_name]}"
        checks.append(check)
    notes = [n for c in checks for n in getattr(c, "notes", [])]
    return CheckSet(checks, notes)


# Importing the modules registers their checks.
from runner.eval.checks import command, fim, syntax, text  # noqa: E402, F401

# The type of `eval.checks`: a list discriminated by each entry's `type:`.
CheckList = tuple[CHECKS.union(), ...]
