"""eval.test_set: fixed prompts in the instruction or the messages form, references optional,
the recipe's system prompt added, bad rows kept with their reason."""

from __future__ import annotations

import json

from runner.eval.checks import CHECKS, Sample
from runner.eval.test_set import read_test_set
from tests.helpers import options


def test_both_forms_with_and_without_references(tmp_path):
    path = tmp_path / "qi_test_cases.jsonl"
    rows = [
        {"instruction": "Create a price validation function", "meta": {"module": "dp"}},
        {"instruction": "Wrap this", "input": "fetch()", "output": "return success(fetch())"},
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "Own system"},
                {"role": "user", "content": "Q"},
            ]
        },
        {"prompt": "Explain Result<T>", "response": "A result", "metadata": {"version": "0.15"}},
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{not json")
    lines.append(json.dumps({"messages": [{"role": "tool", "content": "x"}]}))
    lines.append(json.dumps({"nothing": 1}))
    path.write_text("\n".join(lines) + "\n")
    split = read_test_set(path, "You write @qi code for {{ meta.get('version', 'any version') }}.")
    assert [c.id for c in split.rows] == [f"test_set:{n}" for n in (1, 2, 4, 5, 6)]
    first, wrapped, chat, own, versioned = split.rows
    assert first.reference is None and first.prompt[-1]["content"].startswith("Create a price")
    assert first.prompt[0] == {"role": "system", "content": "You write @qi code for any version."}
    assert first.meta == {"module": "dp"}
    assert wrapped.prompt[-1]["content"] == "Wrap this\n\nfetch()"
    assert wrapped.reference == "return success(fetch())"
    assert chat.reference == "Hello" and len(chat.prompt) == 2
    assert own.prompt == [
        {"role": "system", "content": "Own system"},
        {"role": "user", "content": "Q"},
    ]
    assert versioned.prompt[0]["content"] == "You write @qi code for 0.15."
    assert [(s["line"], s["reason"][:24]) for s in split.skipped] == [
        (3, "not JSON: Expecting prop"),
        (7, "messages[0] has no syste"),
        (8, "no `messages` list and n"),
    ]


def test_checks_that_need_a_reference_say_so(tmp_path):
    sample = Sample("a", [{"role": "user", "content": "q"}], None, "answer")
    for spec in ({"type": "exact"}, {"type": "contains"}, {"type": "similarity"}):
        result = CHECKS.get(spec["type"])(options(CHECKS, spec))(sample)
        assert not result.passed and "no reference answer" in result.reason
    with_text = CHECKS.get("contains")(options(CHECKS, {"type": "contains", "text": "ans"}))
    assert with_text(sample).passed
