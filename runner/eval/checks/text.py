"""Checks on the answer's text: regex patterns, the reference answer, how generation ended."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from runner.eval.checks import CHECKS, Check, CheckResult, Sample
from runner.recipe.fields import Operation, Pattern


def _compile(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The patterns, compiled (the recipe loader already refused any that does not compile)."""
    return [re.compile(pattern, re.MULTILINE) for pattern in patterns]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _squash(text: str) -> str:
    return " ".join(text.split())


@CHECKS.register
class RegexCheck(Check):
    """Fails when a ``forbid`` pattern matches the answer or a ``require`` pattern does not:
    the same words as the data stage's ``regex`` filter."""

    class Options(Operation):
        """Regular expressions the answer must (`require`) or must not (`forbid`) match."""

        type: Literal["regex"]
        forbid: tuple[Pattern, ...] = ()
        """No pattern may match (anti-patterns, deprecated syntax)."""
        require: tuple[Pattern, ...] = ()
        """Each pattern must match."""

    def __init__(self, options: Options):
        super().__init__(options)
        self.forbid = _compile(options.forbid)
        self.require = _compile(options.require)

    def __call__(self, sample: Sample) -> CheckResult:
        failed = forbidden(self.forbid, sample) or missing(self.require, sample)
        if failed is not None:
            return failed
        return CheckResult(
            True,
            f"none of {len(self.forbid)} forbidden pattern(s) found, "
            f"all {len(self.require)} required pattern(s) found",
        )


def forbidden(patterns: Sequence[re.Pattern[str]], sample: Sample) -> CheckResult | None:
    for pattern in patterns:
        match = pattern.search(sample.answer)
        if match:
            line = _line_of(sample.answer, match.start())
            return CheckResult(
                False, f"forbidden /{pattern.pattern}/ matched {match[0][:40]!r} at line {line}"
            )
    return None


def missing(patterns: Sequence[re.Pattern[str]], sample: Sample) -> CheckResult | None:
    absent = [p.pattern for p in patterns if not p.search(sample.answer)]
    if absent:
        return CheckResult(
            False, "required pattern(s) missing: " + ", ".join(f"/{m}/" for m in absent)
        )
    return None


class PatternsOptions(Operation):
    """The old spelling of a regex check: `type: forbid` or `require` with `patterns:`."""

    patterns: tuple[Pattern, ...] = Field(min_length=1)


@CHECKS.register
class ForbidCheck(Check):
    """Deprecated spelling of ``type: regex, forbid: [...]`` (kept working; the loader warns)."""

    class Options(PatternsOptions):
        """Deprecated: write `type: regex` with `forbid:`."""

        type: Literal["forbid"]

    def __init__(self, options: Options):
        super().__init__(options)
        self.patterns = _compile(options.patterns)

    def __call__(self, sample: Sample) -> CheckResult:
        return forbidden(self.patterns, sample) or CheckResult(
            True, f"none of {len(self.patterns)} forbidden pattern(s) found"
        )


@CHECKS.register
class RequireCheck(Check):
    """Deprecated spelling of ``type: regex, require: [...]`` (kept working; the loader warns)."""

    class Options(PatternsOptions):
        """Deprecated: write `type: regex` with `require:`."""

        type: Literal["require"]

    def __init__(self, options: Options):
        super().__init__(options)
        self.patterns = _compile(options.patterns)

    def __call__(self, sample: Sample) -> CheckResult:
        return missing(self.patterns, sample) or CheckResult(
            True, f"all {len(self.patterns)} required pattern(s) found"
        )


# A fixed test prompt (`eval.test_set`) may come without a reference answer: the checks that
# compare with one fail on it, with this reason, rather than comparing with an empty text.
NO_REFERENCE = CheckResult(False, "no reference answer to compare with (eval.test_set row)")


@CHECKS.register
class ExactCheck(Check):
    """The answer equals the reference (whitespace runs collapsed unless told otherwise)."""

    class Options(Operation):
        """The answer equals the reference answer."""

        type: Literal["exact"]
        normalize_whitespace: bool = True
        """Collapse runs of whitespace before comparing."""

    def __call__(self, sample: Sample) -> CheckResult:
        if sample.reference is None:
            return NO_REFERENCE
        normalize = self.options.normalize_whitespace
        answer, reference = sample.answer.strip(), sample.reference.strip()
        if normalize:
            answer, reference = _squash(answer), _squash(reference)
        if answer == reference:
            return CheckResult(True, "equals the reference")
        at = next(
            (i for i, (a, b) in enumerate(zip(answer, reference, strict=False)) if a != b),
            min(len(answer), len(reference)),
        )
        return CheckResult(False, f"differs from the reference at character {at}")


@CHECKS.register
class ContainsCheck(Check):
    """The answer contains ``text`` (default: the whole reference answer), whitespace-insensitive."""

    class Options(Operation):
        """The answer contains a text."""

        type: Literal["contains"]
        text: str | None = None
        """Text the answer must contain; defaults to the reference answer."""

    def __call__(self, sample: Sample) -> CheckResult:
        if not self.options.text and sample.reference is None:
            return NO_REFERENCE
        needle = self.options.text or sample.reference
        what = repr(needle[:40]) if self.options.text else "the reference answer"
        if _squash(needle) in _squash(sample.answer):
            return CheckResult(True, f"contains {what}")
        return CheckResult(False, f"does not contain {what}")


def similarity(a: str, b: str) -> float:
    """Similarity ratio in [0, 1] of two texts (difflib's, on whitespace-collapsed text)."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, _squash(a), _squash(b), autojunk=False).ratio()


@CHECKS.register
class SimilarityCheck(Check):
    """The answer is at least ``min`` similar to the reference."""

    class Options(Operation):
        """The answer is similar to the reference answer (difflib's ratio)."""

        type: Literal["similarity"]
        min: float = Field(0.5, ge=0, le=1)
        """Lowest similarity ratio that passes."""

    def __call__(self, sample: Sample) -> CheckResult:
        if sample.reference is None:
            return NO_REFERENCE
        minimum = self.options.min
        ratio = similarity(sample.answer, sample.reference)
        verdict = ">=" if ratio >= minimum else "<"
        return CheckResult(ratio >= minimum, f"similarity {ratio:.2f} {verdict} {minimum:.2f}")


@CHECKS.register
class StopsCheck(Check):
    """Generation ended on an end token or stop string, not on the token limit.

    A model whose end-of-turn token was never trained rambles until the limit (axolotl#1608).
    """

    class Options(Operation):
        """Generation ended on an end token, not the token limit."""

        type: Literal["stops"]

    def __call__(self, sample: Sample) -> CheckResult:
        if sample.finish_reason == "stop":
            return CheckResult(True, "ended on an end token")
        return CheckResult(False, f"did not stop: finish reason {sample.finish_reason!r}")
