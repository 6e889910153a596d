"""The ``syntax`` check: every code block of the answer parses (tree-sitter)."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import field_validator

from runner import grammars
from runner.eval.checks import CHECKS, Check, CheckResult, Sample
from runner.eval.codeblocks import code_blocks, normalize_language
from runner.recipe.fields import Operation


@CHECKS.register
class SyntaxCheck(Check):
    """The answer's code parses in its language.

    ``language: auto`` takes each block's fence tag, then the example's ``meta.language`` for
    untagged blocks; an explicit language checks that language's and untagged blocks only. An
    answer without fences is checked whole. Blocks in languages without a grammar are skipped and
    named in the reason; an answer with no checkable code fails (there is nothing that parses).
    """

    class Options(Operation):
        """The answer's code blocks parse."""

        type: Literal["syntax"]
        language: str = "auto"
        """The language to check; `auto` takes each block's fence tag."""

        @field_validator("language")
        @classmethod
        def _has_grammar(cls, language: str) -> str:
            if language != "auto" and not grammars.has_parser(normalize_language(language)):
                known = sorted(grammars.grammar_names())
                close = difflib.get_close_matches(language.lower(), known, n=3)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise ValueError(
                    f"language {language!r} has no grammar ({hint}{len(known)} languages have "
                    "one: see tree-sitter-language-pack; or auto)"
                )
            return language

    def __init__(self, options: Options):
        super().__init__(options)
        language = options.language
        self.language = None if language == "auto" else normalize_language(language)

    def __call__(self, sample: Sample) -> CheckResult:
        fallback = self.language or normalize_language(sample.language)
        blocks = code_blocks(sample.answer)
        pieces = [(b.language or fallback, b.code) for b in blocks] or [(fallback, sample.answer)]
        if self.language is not None:
            pieces = [(lang, code) for lang, code in pieces if lang == self.language]
        skipped = sorted({lang or "unknown" for lang, _ in pieces if not grammars.has_parser(lang)})
        checked = [(lang, code) for lang, code in pieces if grammars.has_parser(lang)]
        if not checked:
            why = f" (language: {', '.join(skipped)})" if skipped else ""
            wanted = f"{self.language} " if self.language else ""
            return CheckResult(False, f"no {wanted}code to parse{why}")
        for n, (lang, code) in enumerate(checked, 1):
            error = grammars.parse_error(code, lang)
            if error is not None:
                return CheckResult(False, f"block {n}: {lang}: {error}")
        langs = ", ".join(sorted({lang for lang, _ in checked}))
        return CheckResult(True, f"{len(checked)} block(s) parse ({langs})")
