"""The whole data stage: outputs, counts, grouped split, decontamination, bad input, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.data.build import run
from runner.errors import StageError, UserError
from runner.run.context import StageContext

from .conftest import DATASETS, REPO


def build(recipe, tmp_path, tokens, **kwargs):
    ctx = StageContext(stage="data", out=tmp_path / "data", run_dir=tmp_path)
    return run(recipe, ctx, tokens=tokens, progress=False, **kwargs).summary, tmp_path / "data"


def rows(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines() if line]


ZIG = str(DATASETS / "zignet/zig-combined-dataset.json")


def test_zignet_build(recipe_factory, tmp_path, tokens):
    recipe = recipe_factory(
        [{"type": "instructions", "name": "zig", "path": ZIG, "format": "zignet"}],
        filters=[
            {"type": "exact_dedupe"},
            {"type": "syntax", "language": "zig"},
            {"type": "regex", "forbid": [r"@intToFloat\(", r"@floatToInt\("]},
        ],
        balance={"by": "difficulty", "mode": "cap", "max_per_value": 6},
        split={"train": 0.7, "val": 0.15, "test": 0.15, "group_by": "topic"},
        prompt={"system": "You are a Zig expert for version {{ meta.version }}."},
    )
    summary, out = build(recipe, tmp_path, tokens)
    report = json.loads((out / "report.json").read_text())
    assert report["rejected"] == {
        "balance: over target for difficulty": 5,
        "filter:syntax: syntax error": 3,
        "filter:regex: forbidden pattern": 2,
        "filter:exact_dedupe: exact duplicate": 1,
    }
    splits = {name: rows(out / f"{name}.jsonl") for name in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 26 - 11
    assert all(len(s) > 0 for s in splits.values())
    topics = {name: {r["meta"]["topic"] for r in s} for name, s in splits.items()}
    assert not (
        topics["train"] & topics["val"]
        or topics["train"] & topics["test"]
        or topics["val"] & topics["test"]
    )
    assert report["leak_check"]["groups_in_several_splits"] == 0
    first = splits["train"][0]
    assert first["messages"][0] == {
        "role": "system",
        "content": f"You are a Zig expert for version {first['meta']['version']}.",
    }
    assert set(first) == {"id", "messages", "meta"}
    rejected = rows(out / "rejected.jsonl")
    regex = [r for r in rejected if r["stage"] == "filter:regex"]
    assert {(r["file"], r["line"]) for r in regex} == {
        ("zig-combined-dataset.json", 12),
        ("zig-combined-dataset.json", 132),
    }
    assert report["tokens"]["train"]["max"] > 0 and (out / "token_lengths.png").stat().st_size > 0
    assert "## Split and leak check" in (out / "report.md").read_text()
    assert summary["counts"] == report["split"]["written"]
    # Same recipe, same output: the build is deterministic.
    again, out2 = build(recipe, tmp_path / "again", tokens)
    assert (out2 / "train.jsonl").read_text() == (out / "train.jsonl").read_text()


def test_decontamination_removes_train_near_duplicates(recipe_factory, tmp_path, tokens):
    base = " ".join(f"step{i} of the payment flow" for i in range(60))
    data = tmp_path / "d.jsonl"
    lines = [{"instruction": f"Task {i}", "output": base + f" variant {i}"} for i in range(12)]
    lines += [
        {"instruction": f"Other {i}", "output": f"unrelated answer number {i} " * 20}
        for i in range(12)
    ]
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    recipe = recipe_factory(
        [{"type": "instructions", "path": str(data)}], split={"train": 0.6, "val": 0.2, "test": 0.2}
    )
    _, out = build(recipe, tmp_path, tokens)
    report = json.loads((out / "report.json").read_text())
    held = rows(out / "val.jsonl") + rows(out / "test.jsonl")
    assert any("payment flow" in r["messages"][-1]["content"] for r in held)
    train = rows(out / "train.jsonl")
    assert not any("payment flow" in r["messages"][-1]["content"] for r in train)
    assert report["leak_check"]["train_near_duplicates_removed"] > 0
    assert (
        report["rejected"]["decontaminate: near duplicate of val/test"]
        == report["leak_check"]["train_near_duplicates_removed"]
    )


def test_on_error_fail_names_file_and_line(recipe_factory, tmp_path, tokens):
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    recipe = recipe_factory([{"type": "instructions", "path": str(data)}], on_error="fail")
    with pytest.raises(StageError, match=r"d\.jsonl:2: malformed JSON: Expecting value"):
        build(recipe, tmp_path, tokens)


def test_missing_path_is_refused_when_the_recipe_is_loaded(recipe_factory, tmp_path):
    with pytest.raises(UserError, match="nope does not exist"):
        recipe_factory([{"type": "repo", "path": str(tmp_path / "nope")}])


def test_weights_and_caps(recipe_factory, tmp_path, tokens):
    def dataset(name, n):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "\n".join(
                json.dumps({"instruction": f"{name} {i}", "output": f"{name} answer {i} " * 5})
                for i in range(n)
            )
            + "\n"
        )
        return str(path)

    recipe = recipe_factory(
        [
            {"type": "instructions", "name": "a", "path": dataset("a", 20), "max_examples": 10},
            {"type": "instructions", "name": "b", "path": dataset("b", 10), "weight": 2.0},
        ],
        split={"train": 1.0, "val": 0.0, "test": 0.0, "decontaminate": False},
    )
    _, out = build(recipe, tmp_path, tokens)
    train = rows(out / "train.jsonl")
    assert sum(r["meta"]["source"] == "a" for r in train) == 10
    assert sum(r["meta"]["source"] == "b" for r in train) == 20
    assert len({r["id"] for r in train}) == 30  # copies get their own ids


def test_repo_build_with_pool(recipe_factory, tmp_path, tokens):
    """Enough files to use the worker pool; secrets planted in one are redacted in the output."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"m{i}.py").write_text(
            f'def f{i}(x):\n    """Return x plus {i}, the offset this module adds."""\n'
            f"    return x + {i}\n"
        )
    (src / "conf.py").write_text('API_TOKEN = "ghp_Zx9Y8w7V6u5T4s3R2q1P0o9N8m7L6k5J4i3H"\n')
    recipe = recipe_factory(
        [
            {
                "type": "repo",
                "path": str(src),
                "extract": [{"type": "explain_code"}, {"type": "file_completion"}],
            }
        ],
        filters=[{"type": "near_dedupe"}, {"type": "secrets"}],
    )
    _, out = build(recipe, tmp_path, tokens, workers=2)
    everything = "".join((out / f"{n}.jsonl").read_text() for n in ("train", "val", "test"))
    assert "ghp_Zx9Y8w7" not in everything and "<REDACTED_SECRET>" in everything
    assert "ghp_Zx9Y8w7" not in (out / "rejected.jsonl").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["extractors"] == {"explain_code": 20, "file_completion": 21}
    assert report["filters"][1]["altered"] == {"redacted secret": 1}


def test_pool_and_one_process_write_the_same_files(recipe_factory, tmp_path, tokens):
    """Forked workers (the first task runs in the main process, the rest in the pool) write
    what one process writes, near duplicates and redactions included."""
    src = tmp_path / "src"
    src.mkdir()
    body = "\n".join(f"    total += x * {n} - {n} // 3" for n in range(40))
    for i in range(24):
        variant = body if i % 3 else body.replace("- 7 //", f"- {i} //")
        (src / f"m{i:02}.py").write_text(
            f"def f{i % 5}(x):\n    total = {i}\n{variant}\n    return total\n"
        )
    (src / "conf.py").write_text('API_TOKEN = "ghp_Zx9Y8w7V6u5T4s3R2q1P0o9N8m7L6k5J4i3H"\n')
    recipe = recipe_factory(
        [{"type": "repo", "path": str(src), "extract": [{"type": "file_completion"}]}],
        filters=[{"type": "exact_dedupe"}, {"type": "near_dedupe"}, {"type": "secrets"}],
    )
    outputs = {}
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        _, out = build(recipe, folder, tokens, workers=workers)
        outputs[workers] = {
            name: (out / name).read_text()
            for name in ("train.jsonl", "val.jsonl", "test.jsonl", "rejected.jsonl")
        }
        report = json.loads((out / "report.json").read_text())
        assert report["filters"][1]["dropped"].get("near duplicate", 0) > 0
    assert outputs[1] == outputs[2]


@pytest.mark.parametrize("name", ["zignet", "meton", "agent-logs", "hyperswitch", "qi", "polyglot"])
def test_example_recipes_build(name, tmp_path, tokens):
    from runner.recipe.load import load_recipe

    overrides = ["model.base=tiny:qwen2"]
    if name == "hyperswitch":
        # Fill-in-the-middle needs a base with FIM tokens (tiny:qwen2 has none), and its
        # teacher is an Ollama that is not running here: the build goes on without it.
        from tokenizers import Tokenizer

        from runner.data.tokenizer import TokenCounter
        from tests.data.conftest import tokenizer_json

        overrides = [
            "model.base=tiny:deepseek-coder",
            "teacher.base_url=http://127.0.0.1:9/v1",
            "teacher.retries=0",
            f"teacher.cache_dir={tmp_path / 'teacher'}",
        ]
        tokens = TokenCounter(Tokenizer.from_file(str(tokenizer_json("deepseek-coder"))))
    recipe = load_recipe(REPO / "recipes/examples" / f"{name}.yaml", overrides)
    summary, out = build(recipe, tmp_path, tokens)
    assert summary["counts"]["train"] > 0
    for split in ("train", "val", "test"):
        for row in rows(out / f"{split}.jsonl"):
            assert row["messages"][-1]["role"] == "assistant"
    report = json.loads((out / "report.json").read_text())
    for files in report["files"].values():
        assert files["listed"] == (
            files["with_examples"] + files["skipped"] + files["without_examples"]
        )
        assert "no example and no reason given" not in files["without_examples_by_reason"]
    if name == "hyperswitch":
        assert rows(out / "train.fim.jsonl") and report["extractors"]["fill_in_middle"] > 5
        assert set(report["teacher"]["outcomes"]) <= {"asked", "refused", "gave up"}
    if name == "zignet":
        repairs = [r for r in rows(out / "train.jsonl") if r["meta"].get("task") == "repair_code"]
        assert repairs and all(r["meta"]["rejected_by"] == "grammar" for r in repairs)


def test_polyglot_example(tmp_path, tokens):
    """The polyglot fixture: units from Go, Elixir and Kotlin by one rule, ReScript without a
    grammar still in, every file accounted for, the dev password redacted."""
    from runner.recipe.load import load_recipe

    recipe = load_recipe(REPO / "recipes/examples/polyglot.yaml", ["model.base=tiny:qwen2"])
    _, out = build(recipe, tmp_path, tokens)
    report = json.loads((out / "report.json").read_text())
    files = report["files"]["ledger"]
    assert files["skipped_by_reason"] == {
        "excluded": 1,
        "generated": 1,
        "lock file": 1,
        "vendored": 1,
    }
    assert (files["listed"], files["with_examples"], files["without_examples"]) == (17, 13, 0)
    languages = report["languages"]
    for language in ("go", "elixir", "kotlin"):
        assert languages[language]["extracted"]["explain_code"] >= 1, language
    assert languages["rescript"]["extracted"] == {"file_completion": 2, "complete_code": 4}
    assert languages["bash"]["files"] == 1  # bin/release, by its shebang
    written = "".join((out / f"{n}.jsonl").read_text() for n in ("train", "val", "test"))
    assert (
        "Sup3r-Secr3t-Dev" not in written
        and "Sup3r-Secr3t-Dev" not in (out / "rejected.jsonl").read_text()
    )
    rejected = rows(out / "rejected.jsonl")
    short = [r for r in rejected if r["reason"] == "documentation too short"]
    detail = ("internal/ledger/format.go", "function 'Clone': 4 words < 8")
    assert sorted((r["stage"], r["file"], r["detail"]) for r in short) == [
        ("extract:explain_code", *detail),
        ("extract:implement_from_docstring", *detail),
    ]


def test_private_key_file_is_redacted_everywhere_and_crashes_nothing(
    recipe_factory, tmp_path, tokens
):
    """Redacting a multi-line key inside a report sample once broke the sample's JSON
    (the sample was redacted as JSON text); the sample's strings are redacted instead."""
    src = tmp_path / "src"
    src.mkdir()
    body = "MIIEowIBAAKCAQEAzd3PmUS0x7qv9q7hW0B3kz1Ue6Yd\nq7hW0B3kz1Ue6YdMIIEowIBAAKCAQEAzd3Pm"
    (src / "deploy.pem").write_text(
        f'-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"quoted"\n'
    )
    (src / "app.py").write_text('def main():\n    """Start the app."""\n    return 0\n')
    # complete_code cuts the key block in two: redaction runs on the file before it is cut, so
    # the half in the answer (no BEGIN line) is not missed (it was, on a real repository).
    extract = [{"type": "complete_code", "split_at": 0.4}, {"type": "file_completion"}]
    recipe = recipe_factory(
        [{"type": "repo", "path": str(src), "extract": extract}],
        filters=[{"type": "secrets"}, {"type": "emails"}],
    )
    _, out = build(recipe, tmp_path, tokens)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "rejected.jsonl", "report.json"):
        text = (out / name).read_text()
        assert "MIIEowIBAAKCAQEA" not in text and "q7hW0B3kz1Ue6Yd" not in text, name
    report = json.loads((out / "report.json").read_text())
    [sample] = [
        s
        for s in report["samples"]["repo0"]
        if "deploy.pem" in s["after"]["messages"][0]["content"]
    ]
    assert "<REDACTED_SECRET>" in sample["before"]["text"]
    assert "MIIEowIBAAKCAQEA" not in (out / "report.md").read_text()


def test_report_samples_of_records_are_scrubbed_where_kept(recipe_factory, tmp_path, tokens):
    """A record (no document before it) gives its original row as the sample's "before";
    workers send it as it was and the report scrubs the samples it keeps, so neither the
    password nor the e-mail address reaches report.json or report.md."""
    data = tmp_path / "d.jsonl"
    secret = "Zq8vN3xK7pL2mR9tW4yB"
    lines = [
        {
            "instruction": f"Connect to the database {i}",
            "output": f'db.connect(user="app", password="{secret}{i}")  # ops{i}@corp.io',
        }
        for i in range(6)
    ]
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    recipe = recipe_factory(
        [{"type": "instructions", "name": "rows", "path": str(data)}],
        filters=[{"type": "secrets"}, {"type": "emails"}],
    )
    _, out = build(recipe, tmp_path, tokens)
    report = json.loads((out / "report.json").read_text())
    samples = report["samples"]["rows"]
    assert len(samples) == 1 and "file" not in samples[0]  # one task: one sample
    for sample in samples:
        before = sample["before"]["messages"][-1]["content"]
        assert "<REDACTED_SECRET>" in before and secret not in before and "@corp.io" not in before
    for name in ("report.json", "report.md"):
        assert secret not in (out / name).read_text()


def files_of_sixteen(tmp_path, count=3):
    src = tmp_path / "src"
    src.mkdir(parents=True)
    for f in range(count):
        (src / f"m{f}.py").write_text(
            "\n\n".join(f"def f{f}_{i}(x):\n    y = x * {i}\n    return y + {f}" for i in range(16))
        )
    return [{"type": "repo", "path": str(src), "extract": [{"type": "complete_code"}]}]


def test_a_split_too_small_for_eval_stops_the_run_before_training(recipe_factory, tmp_path, tokens):
    """16 examples from one file with train 0.8 / val 0.1 / test 0.1: a whole file goes to one
    split, so val and test come out empty; a run that would evaluate must stop here."""
    recipe = recipe_factory(files_of_sixteen(tmp_path, 1))
    ctx = StageContext(stage="data", out=tmp_path / "data", run_dir=tmp_path)
    outcome = run(recipe, ctx, tokens=tokens, progress=False)
    assert outcome.summary["counts"] == {"train": 16}
    assert (outcome.failure.exit_code, outcome.failure.kind) == (2, "split too small")
    assert outcome.failure.message == (
        "the test split is empty and the evaluation needs test prompts; 0 of 1 group(s) by "
        "`split.group_by: source_file` went to test. Change: a larger split.test (now 0.1), "
        "smaller groups (`split.group_by: none` puts each example in a group of its own), or "
        "eval.enabled: false"
    )
    assert outcome.notes[0] == (
        "split.val is 0.1 but the val split is empty: the 1 group(s) by `split.group_by: "
        "source_file` went 1 to train, 0 to val, 0 to test. Change: a larger split.val, or "
        "smaller groups (`split.group_by: none` puts each example in a group of its own)"
    )
    assert "## Split problems" in (ctx.out / "report.md").read_text()


def test_few_groups_still_fill_every_split_asked_for(recipe_factory, tmp_path, tokens):
    """Three files at 0.8/0.1/0.1: by deficit alone all three go to train; a split asked for
    takes a group while another has groups to spare (test first), as GroupShuffleSplit rounds
    the test groups up."""
    ctx = StageContext(stage="data", out=tmp_path / "a", run_dir=tmp_path)
    outcome = run(
        recipe_factory(files_of_sixteen(tmp_path / "3")), ctx, tokens=tokens, progress=False
    )
    assert outcome.summary["counts"] == {"train": 16, "val": 16, "test": 16}
    assert outcome.failure is None
    assert [n.split(";")[0] for n in outcome.notes] == [
        "the test split holds 16 example(s), fewer than eval.max_prompts (20): the evaluation "
        "answers only those"
    ]
    ctx = StageContext(stage="data", out=tmp_path / "b", run_dir=tmp_path)
    two = recipe_factory(files_of_sixteen(tmp_path / "2", 2))
    outcome = run(two, ctx, tokens=tokens, progress=False)
    assert outcome.summary["counts"] == {"train": 16, "test": 16}
    assert outcome.failure is None and outcome.notes[0].startswith(
        "split.val is 0.1 but the val split is empty: the 2 group(s)"
    )


def test_split_problems_follow_the_recipe(recipe_factory, tmp_path, tokens):
    sources = files_of_sixteen(tmp_path)
    ctx = StageContext(stage="data", out=tmp_path / "a", run_dir=tmp_path)
    # Each example its own group: 5 test examples, fewer than the default max_prompts (20):
    # reported, not fatal (the evaluation answers those 5).
    recipe = recipe_factory(sources, split={"group_by": "none"})
    outcome = run(recipe, ctx, tokens=tokens, progress=False)
    assert outcome.summary["counts"]["test"] == 5 and outcome.failure is None
    assert outcome.notes == [
        "the test split holds 5 example(s), fewer than eval.max_prompts (20): the evaluation "
        "answers only those; 5 of 48 group(s) by `split.group_by: none` went to test. Change: "
        "eval.max_prompts: 5, a larger split.test (now 0.1), more data, or eval.enabled: false"
    ]
    ctx = StageContext(stage="data", out=tmp_path / "b", run_dir=tmp_path)
    recipe = recipe_factory(sources, split={"group_by": "none"}, eval={"max_prompts": 5})
    outcome = run(recipe, ctx, tokens=tokens, progress=False)
    assert outcome.failure is None and outcome.notes == []
    ctx = StageContext(stage="data", out=tmp_path / "c", run_dir=tmp_path)
    recipe = recipe_factory(files_of_sixteen(tmp_path / "one", 1), eval={"enabled": False})
    outcome = run(recipe, ctx, tokens=tokens, progress=False)
    assert outcome.failure is None and len(outcome.notes) == 2  # empty val and test, reported


def test_a_fixed_test_set_needs_no_test_split(recipe_factory, tmp_path, tokens):
    """With eval.test_set the evaluation asks its fixed prompts: an empty test split is
    reported, not a reason to stop before training."""
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"instruction": "Write a function that adds two numbers"}\n')
    recipe = recipe_factory(files_of_sixteen(tmp_path, 1), eval={"test_set": str(queries)})
    ctx = StageContext(stage="data", out=tmp_path / "data", run_dir=tmp_path)
    outcome = run(recipe, ctx, tokens=tokens, progress=False)
    assert outcome.summary["counts"] == {"train": 16}
    assert outcome.failure is None and len(outcome.notes) == 2  # empty val and test, reported
