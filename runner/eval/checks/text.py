"""Checks on the answer's text: regex patterns, the reference answer, how generation ended."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from runner.eval.checks import CHECKS, Check, CheckResult, Sample


def _compile(patterns: Any) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.MULTILINE))
        except re.error as exc:
            raise ValueError(
                f"pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from None
    return compiled


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _squash(text: str) -> str:
    return " ".join(text.split())


@CHECKS.register("forbid")
class ForbidCheck(Check):
    """Fails when any pattern matches the answer (anti-patterns, deprecated syntax)."""

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.patterns = _compile(spec["patterns"])

    def __call__(self, sample: Sample) -> CheckResult:
        for pattern in self.patterns:
            match = pattern.search(sample.answer)
            if match:
                line = _line_of(sample.answer, match.start())
                return CheckResult(
                    False, f"forbidden /{pattern.pattern}/ matched {match[0][:40]!r} at line {line}"
                )
        return CheckResult(True, f"none of {len(self.patterns)} forbidden pattern(s) found")


@CHECKS.register("require")
class RequireCheck(Check):
    """Fails unless every pattern matches the answer."""

    def __init__(self, spec: Mapping[str, Any]):
        super().__init__(spec)
        self.patterns = _compile(spec["patterns"])

    def __call__(self, sample: Sample) -> CheckResult:
        missing = [p.pattern for p in self.patterns if not p.search(sample.answer)]
        if missing:
            return CheckResult(
                False, "required pattern(s) missing: " + ", ".join(f"/{m}/" for m in missing)
            )
        return CheckResult(True, f"all {len(self.patterns)} required pattern(s) found")


@CHECKS.register("exact")
class ExactCheck(Check):
    """The answer equals the reference (whitespace runs collapsed unless told otherwise)."""

    def __call__(self, sample: Sample) -> CheckResult:
        normalize = self.spec.get("normalize_whitespace", True)
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


@CHECKS.register("contains")
class ContainsCheck(Check):
    """The answer contains ``text`` (default: the whole reference answer), whitespace-insensitive."""

    def __call__(self, sample: Sample) -> CheckResult:
        needle = self.spec.get("text") or sample.reference
        what = repr(needle[:40]) if self.spec.get("text") else "the reference answer"
        if _squash(needle) in _squash(sample.answer):
            return CheckResult(True, f"contains {what}")
        return CheckResult(False, f"does not contain {what}")


def similarity(a: str, b: str) -> float:
    """Similarity ratio in [0, 1] of two texts (difflib's, on whitespace-collapsed text)."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, _squash(a), _squash(b), autojunk=False).ratio()


@CHECKS.register("similarity")
class SimilarityCheck(Check):
    """The answer is at least ``min`` similar to the reference."""

    def __call__(self, sample: Sample) -> CheckResult:
        minimum = self.spec.get("min", 0.5)
        ratio = similarity(sample.answer, sample.reference)
        verdict = ">=" if ratio >= minimum else "<"
        return CheckResult(ratio >= minimum, f"similarity {ratio:.2f} {verdict} {minimum:.2f}")


@CHECKS.register("stops")
class StopsCheck(Check):
    """Generation ended on an end token or stop string, not on the token limit.

    A model whose end-of-turn token was never trained rambles until the limit (axolotl#1608).
    """

    def __call__(self, sample: Sample) -> CheckResult:
        if sample.finish_reason == "stop":
            return CheckResult(True, "ended on an end token")
        return CheckResult(False, f"did not stop: finish reason {sample.finish_reason!r}")
