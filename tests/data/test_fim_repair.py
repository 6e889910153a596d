"""fill_in_middle and repair_code on real tokenizers and real grammars."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runner.data.example import Example
from runner.data.filters.syntax import code_blocks
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS, load_all
from runner.errors import UserError
from runner.grammars import parse_error
from runner.prompt.fim import FAMILIES, base_fim_problem, fim_format
from tests.data.conftest import tokenizer_json
from tests.data.test_extractors import PYTHON, RUST, ZIG
from tests.helpers import options

load_all()

TS = """export function total(prices: number[]): number {
  let sum = 0;
  for (const price of prices) {
    sum += price;
  }
  return sum;
}
"""
ZIG_CASTS = """const std = @import("std");

pub fn mean(values: []const u32) f64 {
    var sum: u64 = 0;
    for (values) |v| {
        sum += v;
    }
    return @as(f64, @floatFromInt(sum)) / @as(f64, @floatFromInt(values.len));
}
"""


@pytest.fixture(scope="module")
def deepseek_tokens():
    from tokenizers import Tokenizer

    from runner.data.tokenizer import TokenCounter

    return TokenCounter(Tokenizer.from_file(str(tokenizer_json("deepseek-coder"))))


def document(text: str, language: str | None, path: str = "src/x") -> Example:
    meta = {"source_file": path, "path": path, "language": language}
    return Example(id=f"doc-{path}", source="s", text=text, metadata=meta)


def fim_extractor(tokens, seq_len=512, max_unit_tokens=1024, **spec):
    cls = EXTRACTORS.get("fill_in_middle")
    extractor = cls(
        options(EXTRACTORS, {"type": "fill_in_middle", "rate": 1.0, **spec}),
        SimpleNamespace(max_unit_tokens=max_unit_tokens),
        tokens,
    )
    extractor.attach(SimpleNamespace(seq_len=seq_len, log_file=None), {})
    return extractor


# -- the format comes from the tokenizer ---------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.family)
def test_each_family_is_found_by_its_own_tokens(family):
    vocabulary = {"a", "b", *family.vocab}
    assert fim_format(vocabulary).family == family.family
    assert fim_format(vocabulary - {family.vocab[1]}) is None


def test_real_vocabularies():
    """The tiny models' real tokenizers: DeepSeek-Coder has its FIM tokens, Qwen2's vocabulary
    has none; llama.cpp's StarCoder vocabulary file has StarCoder's."""
    import gguf

    from runner.llamacpp import vocab_gguf
    from runner.prompt.fim import folder_vocabulary

    assert base_fim_problem("tiny:deepseek-coder") == (None, True)
    problem, certain = base_fim_problem("tiny:qwen2")
    assert certain and "has no fill-in-the-middle tokens" in problem
    deepseek = folder_vocabulary(tokenizer_json("deepseek-coder").parent)
    assert fim_format(deepseek).prefix == "<\uff5cfim\u2581begin\uff5c>"
    tokens = gguf.GGUFReader(str(vocab_gguf("starcoder"))).fields["tokenizer.ggml.tokens"]
    starcoder = {tokens.contents(i) for i in range(len(tokens.data))}
    assert fim_format(starcoder).family == "starcoder"


@pytest.mark.parametrize("mode", ["psm", "spm"])
def test_prompt_round_trips(mode):
    fim = FAMILIES[2].with_mode(mode)
    before, after = "def f(x):\n    return ", "\n\nprint(f(2))\n"
    prompt = fim.prompt(before, after)
    assert fim.split_prompt(prompt) == (before, after)
    first = fim.prefix if mode == "psm" else fim.suffix
    assert prompt.startswith(first) and prompt.endswith(fim.middle)


# -- fill_in_middle ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "language"), [(PYTHON, "python"), (ZIG, "zig"), (RUST, "rust")])
@pytest.mark.parametrize("span", ["syntax", "lines"])
def test_infill_examples_rebuild_the_file(deepseek_tokens, text, language, span):
    extractor = fim_extractor(deepseek_tokens, span=span)
    (example,) = list(extractor.extract(document(text, language)))
    user, middle = example.messages[0]["content"], example.messages[1]["content"]
    before, after = extractor.fim.split_prompt(user)
    assert before + middle + after == text
    assert middle.strip() and middle.count("\n") <= 8
    meta = example.metadata
    assert meta["format"] == "fim" and meta["fim_family"] == "deepseek-coder"
    assert meta["system_prompt"] == "none" and meta["span"] != ("lines" if span == "syntax" else "")
    # Seeded: the same document gives the same example.
    (again,) = list(fim_extractor(deepseek_tokens, span=span).extract(document(text, language)))
    assert again.messages == example.messages and again.id == example.id


def test_infill_pieces_fit_the_sequence_length(deepseek_tokens):
    text = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(80))
    extractor = fim_extractor(deepseek_tokens, seq_len=128)
    examples = list(extractor.extract(document(text, "python")))
    assert len(examples) > 5
    for example in examples:
        row = "".join(m["content"] for m in example.messages)
        assert deepseek_tokens.count(row) <= 128 - 2  # room for BOS and eos


def test_rate_draws_a_share_of_pieces(deepseek_tokens):
    text = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(80))
    full = list(fim_extractor(deepseek_tokens, seq_len=64).extract(document(text, "python")))
    half = list(
        fim_extractor(deepseek_tokens, seq_len=64, rate=0.5).extract(document(text, "python"))
    )
    assert 0.2 * len(full) < len(half) < 0.8 * len(full)


def test_files_without_grammar_use_lines_and_files_with_markers_are_refused(deepseek_tokens):
    extractor = fim_extractor(deepseek_tokens)
    (example,) = list(extractor.extract(document("line one\nline two\nline three\n", None)))
    assert example.metadata["span"] == "lines"
    marker = extractor.fim.prefix
    (rejected,) = list(extractor.extract(document(f"x = '{marker}'\n", "python")))
    assert isinstance(rejected, Rejection) and rejected.reason == "holds FIM tokens"


def test_a_base_without_fim_tokens_is_refused(tokens):
    with pytest.raises(UserError, match="has no fill-in-the-middle tokens"):
        fim_extractor(tokens)


def test_recipe_validation_refuses_fim_on_qwen2(tmp_path):
    from runner.recipe.load import load_recipe
    from runner.recipe.problems import RecipeErrors

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text(PYTHON)
    recipe = tmp_path / "r.yaml"
    text = (
        "recipe: 1\nname: t\nsources:\n  - type: repo\n    path: src\n    extract:\n"
        "      - type: fill_in_middle\nmodel:\n  base: {base}\n"
    )
    recipe.write_text(text.format(base="tiny:qwen2"))
    with pytest.raises(RecipeErrors) as caught:
        load_recipe(recipe)
    rendered = caught.value.problems[0].render()
    assert "7:9: sources[0].extract[0].type: fill_in_middle: model.base 'tiny:qwen2' has no" in (
        rendered
    ), rendered
    recipe.write_text(text.format(base="tiny:deepseek-coder"))
    load_recipe(recipe)


# -- repair_code ---------------------------------------------------------------------------------


def repair(tokens, **spec):
    cls = EXTRACTORS.get("repair_code")
    extractor = cls(
        options(EXTRACTORS, {"type": "repair_code", **spec}),
        SimpleNamespace(max_unit_tokens=1024),
        tokens,
    )
    extractor.attach(SimpleNamespace(log_file=None), {})
    return extractor


@pytest.mark.parametrize(
    ("text", "language"),
    [(PYTHON, "python"), (ZIG, "zig"), (RUST, "rust"), (TS, "typescript")],
)
def test_repair_pairs_break_the_grammar(deepseek_tokens, text, language):
    produced = list(repair(deepseek_tokens).extract(document(text, language)))
    examples = [p for p in produced if isinstance(p, Example)]
    assert examples, [p.detail for p in produced]
    for example in examples:
        meta = example.metadata
        ((info, broken),) = code_blocks(example.messages[0]["content"])
        ((_, fixed),) = code_blocks(example.messages[1]["content"])
        assert info == language and broken != fixed
        assert example.messages[0]["content"].startswith(f"Fix this error: {meta['error']}\n")
        assert parse_error(broken, language) == meta["error"]  # the grammar rejects the break
        assert parse_error(fixed, language) is None
        assert meta["rejected_by"] == "grammar" and meta["mutation"] in (
            "drop_bracket",
            "drop_semicolon",
            "drop_colon",
        )
    per_unit = {}
    for example in examples:
        per_unit[example.metadata["unit"]] = per_unit.get(example.metadata["unit"], 0) + 1
    assert max(per_unit.values()) <= 2


def test_breaks_the_grammar_accepts_are_counted_not_kept(deepseek_tokens):
    """A deprecated call swapped back in parses: without a command it is never an example."""
    extractor = repair(deepseek_tokens, breaks=["deprecated_call"])
    (rejected,) = list(extractor.extract(document(ZIG_CASTS, "zig")))
    assert isinstance(rejected, Rejection) and rejected.reason == "no break rejected"
    assert "deprecated_call" in rejected.detail


def test_a_command_rejects_what_the_grammar_accepts(deepseek_tokens):
    """The recipe's regex pair `@floatFromInt` -> `@intToFloat`, judged by a real command
    (standing in for `zig ast-check`, which is not installed here)."""
    checker = [
        "sh",
        "-c",
        'if grep -n "@intToFloat" "$1"; then echo "error: deprecated builtin" >&2; exit 1; fi',
        "sh",
        "{file}",
    ]
    extractor = repair(
        deepseek_tokens,
        breaks=[],
        mutations=[{"find": r"@floatFromInt\(", "replace": "@intToFloat(", "name": "old cast"}],
        command=checker,
        allow_command=True,
        file="snippet.zig",
    )
    examples = list(extractor.extract(document(ZIG_CASTS, "zig")))
    assert len(examples) == 2 and all(isinstance(e, Example) for e in examples)
    for example in examples:
        assert example.metadata["rejected_by"] == "command"
        assert example.metadata["mutation"] == "old cast"
        assert "@intToFloat(" in example.messages[0]["content"]
        assert "@intToFloat" not in example.messages[1]["content"]
        ((_, broken),) = code_blocks(example.messages[0]["content"])
        assert parse_error(broken, "zig") is None


def test_a_command_needs_permission(deepseek_tokens):
    with pytest.raises(UserError, match="allow_command"):
        repair(deepseek_tokens, command=["true"])
