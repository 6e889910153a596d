"""Every source on small real inputs, including bad input reported with file and line."""

from __future__ import annotations

import json
import os

import pytest

from runner.data.example import Example
from runner.data.outcome import Rejection
from runner.data.registries import SOURCES, load_all
from tests.helpers import options

from .conftest import DATASETS

load_all()


def read_all(spec, name="s"):
    source = SOURCES.get(spec["type"])(options(SOURCES, spec), name)
    examples, rejections = [], []
    for task in source.tasks():
        for item in source.read(task):
            (rejections if isinstance(item, Rejection) else examples).append(item)
    return source, examples, rejections


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


# -- instructions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "row", "user", "assistant"),
    [
        ("alpaca", {"instruction": "Add", "input": "1 2", "output": "3"}, "Add\n\n1 2", "3"),
        ("alpaca", {"instruction": "Say hi", "input": "", "output": "hi"}, "Say hi", "hi"),
        (
            "zignet",
            {
                "instruction": "Write Zig",
                "context": "ctx",
                "response": "const x = 1;",
                "metadata": {"version": "0.15.0"},
            },
            "Write Zig\n\nctx",
            "const x = 1;",
        ),
        ("prompt_completion", {"prompt": "2+2=", "completion": "4"}, "2+2=", "4"),
        ("auto", {"prompt": "2+2=", "completion": "4"}, "2+2=", "4"),
        ("auto", {"instruction": "I", "context": "C", "response": "R"}, "I\n\nC", "R"),
    ],
)
def test_instruction_layouts(tmp_path, fmt, row, user, assistant):
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    _, examples, rejections = read_all({"type": "instructions", "path": str(path), "format": fmt})
    assert rejections == []
    assert examples[0].messages == [
        {"role": "user", "content": user},
        {"role": "assistant", "content": assistant},
    ]
    assert examples[0].metadata["source_file"] == "d.jsonl"
    assert examples[0].metadata["line"] == 1


def test_instructions_custom_fields_and_metadata(tmp_path):
    row = {
        "q": {"text": "Why?"},
        "a": "Because.",
        "sys": "Be brief.",
        "meta": {"level": 2},
        "tag": "x",
    }
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    _, examples, _ = read_all(
        {
            "type": "instructions",
            "path": str(path),
            "format": "custom",
            "fields": {"instruction": "q.text", "output": "a", "system": "sys"},
            "metadata_fields": ["meta", "tag"],
        }
    )
    assert examples[0].messages[0] == {"role": "system", "content": "Be brief."}
    assert examples[0].messages[1]["content"] == "Why?"
    assert examples[0].metadata["level"] == 2 and examples[0].metadata["tag"] == "x"


def test_zignet_sample_carries_metadata():
    _, examples, rejections = read_all(
        {
            "type": "instructions",
            "format": "zignet",
            "path": str(DATASETS / "zignet/zig-combined-dataset.json"),
        }
    )
    assert rejections == []
    assert len(examples) == 26
    assert {e.metadata["difficulty"] for e in examples} == {"easy", "medium", "hard"}
    assert {e.metadata["version"] for e in examples} == {"0.13.0", "0.14.0", "0.15.0"}
    assert examples[1].metadata["line"] == 12  # where the second record starts in the file


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        ('{"instruction": "a", "output": ', "malformed JSON", "Expecting value (column 32)"),
        ('["not", "an", "object"]', "not an object", "expected a JSON object, got list"),
        (
            '{"instruction": "a"}',
            "unknown layout",
            "keys ['instruction'] match no instruction layout",
        ),
        ('{"instruction": "a", "output": ""}', "empty output", "'output' is empty"),
        ('{"instruction": 3, "output": "b"}', "wrong field type", "'instruction' is int, not text"),
    ],
)
def test_instructions_bad_input(tmp_path, line, reason, detail):
    path = write_jsonl(tmp_path / "d.jsonl", ['{"instruction": "ok", "output": "fine"}', line])
    _, examples, rejections = read_all({"type": "instructions", "path": str(path)})
    assert len(examples) == 1
    [bad] = rejections
    assert (bad.reason, bad.detail, bad.file, bad.line, bad.bad_input) == (
        reason,
        detail,
        "d.jsonl",
        2,
        True,
    )


def test_instructions_missing_field_in_custom_layout(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "x"}])
    _, _, [bad] = read_all(
        {
            "type": "instructions",
            "path": str(path),
            "format": "custom",
            "fields": {"instruction": "q", "output": "answer"},
        }
    )
    assert (bad.reason, bad.detail, bad.line) == ("missing field", "no 'answer' field", 1)


def test_undecodable_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff"}\n')
    _, examples, [bad] = read_all({"type": "instructions", "path": str(path)})
    assert examples == []
    assert (bad.reason, bad.detail, bad.line) == ("undecodable text", "not UTF-8 at byte 53", 2)


# -- conversations --------------------------------------------------------------------------
def test_meton_sample():
    source, examples, rejections = read_all(
        {"type": "conversations", "format": "meton", "path": str(DATASETS / "meton/conversations")}
    )
    reasons = sorted((r.reason, r.file) for r in rejections)
    assert reasons == [
        ("malformed JSON", "session_20251030_120000_deadbeef.json"),
        ("no assistant turn", "session_20251030_080102_0a0b0c0d.json"),
    ]
    assert len(examples) == 6
    with_tool = next(e for e in examples if "main.py" in e.messages[0]["content"])
    assert [m["role"] for m in with_tool.messages] == ["user", "assistant", "user", "assistant"]
    assert with_tool.metadata["session_id"].startswith("8d2e6b71")


@pytest.mark.parametrize(
    ("record", "options", "roles"),
    [
        (
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "U"},
                    {"role": "assistant", "content": "A"},
                ]
            },
            {},
            ["system", "user", "assistant"],
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "U"},
                    {"role": "assistant", "content": "A"},
                ]
            },
            {"system_messages": "drop"},
            ["user", "assistant"],
        ),
        (
            {
                "conversations": [
                    {"from": "human", "value": "U"},
                    {"from": "gpt", "value": "A"},
                    {"from": "human", "value": "trailing"},
                ]
            },
            {},
            ["user", "assistant"],
        ),
        (
            {"messages": [{"role": "me", "content": "U"}, {"role": "ai", "content": "A"}]},
            {"roles": {"me": "user", "ai": "assistant"}},
            ["user", "assistant"],
        ),
    ],
)
def test_conversation_layouts(tmp_path, record, options, roles):
    path = write_jsonl(tmp_path / "c.jsonl", [record])
    _, [example], [] = read_all({"type": "conversations", "path": str(path), **options})
    assert [m["role"] for m in example.messages] == roles


@pytest.mark.parametrize(
    ("record", "options", "reason", "detail"),
    [
        (
            {"messages": [{"role": "wizard", "content": "U"}]},
            {},
            "unknown role",
            "message 0 has role 'wizard'; map it under `roles:`",
        ),
        (
            {"messages": [{"role": "user"}]},
            {},
            "missing field",
            "message 0 lacks 'role' or 'content' text",
        ),
        (
            {"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]},
            {"min_turns": 2},
            "fewer than min_turns",
            "1 assistant turn(s), min_turns is 2",
        ),
        ({"title": "no messages"}, {}, "missing field", "no 'messages' list"),
    ],
)
def test_conversation_bad_input(tmp_path, record, options, reason, detail):
    path = write_jsonl(tmp_path / "c.jsonl", [record])
    _, [], [bad] = read_all({"type": "conversations", "path": str(path), **options})
    assert (bad.reason, bad.detail, bad.line) == (reason, detail, 1)


# -- agent logs -----------------------------------------------------------------------------
def test_agent_logs_sample():
    spec = {
        "type": "agent_logs",
        "path": str(DATASETS / "agent-logs/success_memory.jsonl"),
        "require_fields": ["spec_issue_description", "successful_diff_summary"],
        "prompt": "Issue: {{ spec_issue_description }}\nFiles: {{ spec_target_files | join(', ') }}",
        "metadata_fields": ["patch_source"],
    }
    _, examples, rejections = read_all(spec)
    assert [(r.reason, r.line) for r in rejections] == [("malformed JSON", 4), ("missing field", 7)]
    assert rejections[1].detail == "no 'spec_issue_description' field"
    assert len(examples) == 5
    assert examples[0].messages[0]["content"].startswith("Issue: Rename `get_usr`")
    assert "services/users.py, api/routes.py" in examples[0].messages[0]["content"]
    assert examples[0].messages[1]["content"].startswith("--- a/services/users.py")
    assert examples[0].metadata["patch_source"] == "LLMCore_generate_scaffold"


def test_agent_logs_template_field_missing(tmp_path):
    path = write_jsonl(tmp_path / "log.jsonl", [{"spec_issue_description": "x"}])
    _, [], [bad] = read_all({"type": "agent_logs", "path": str(path)})
    assert (bad.reason, bad.detail) == ("missing field", "no 'successful_diff_summary' field")


# -- docs -----------------------------------------------------------------------------------
def test_markdown_split_by_heading(tmp_path):
    (tmp_path / "guide.md").write_text(
        "# Guide\n\nIntro text that is long enough to keep around here.\n\n## Install\n\n"
        "Run `pip install x` and then configure it with the file below.\n\n```bash\n# not a heading\n"
        "x --init\n```\n\n## Tiny\n\nshort\n"
    )
    _, examples, rejections = read_all(
        {"type": "docs", "path": str(tmp_path), "min_section_chars": 20}
    )
    assert [e.metadata["title"] for e in examples] == ["Guide", "Install"]
    assert examples[1].metadata["heading_path"] == "Guide > Install"
    assert "# not a heading" in examples[1].text
    assert examples[1].metadata["line"] == 5
    [short] = rejections
    assert (short.reason, short.detail) == (
        "section shorter than min_section_chars",
        "5 < 20 chars",
    )


def test_html_text_through_parser(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>API</title><script>var x = '<h2>fake</h2>';</script></head><body>"
        "<h1>Payments</h1><p>Create a payment with <code>POST /payments</code> and an amount.</p>"
        "<h2>Refunds</h2><ul><li>Full refunds</li><li>Partial refunds</li></ul></body></html>"
    )
    _, examples, _ = read_all({"type": "docs", "path": str(tmp_path), "min_section_chars": 5})
    assert [(e.metadata["title"], e.metadata["heading_path"]) for e in examples] == [
        ("Payments", "Payments"),
        ("Refunds", "Payments > Refunds"),
    ]
    assert "POST /payments" in examples[0].text and "fake" not in examples[0].text
    assert "Partial refunds" in examples[1].text


# -- repo -----------------------------------------------------------------------------------
def test_repo_walk_honours_gitignore_and_skip_rules(tmp_path):
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(DATASETS / "hyperswitch/repo", root)
    (root / "src/blob.rs").write_bytes(b"\x00\x01binary")
    (root / "src/big.rs").write_text("// x\n" * 50)
    (root / "gen.rs").write_text("// @generated by protoc\nfn x() {}\n")
    (tmp_path / "outside.rs").write_text("fn secret() {}\n")
    os.symlink(tmp_path / "outside.rs", root / "src/link.rs")
    spec = {
        "type": "repo",
        "path": str(root),
        "include": ["**/*.rs", "**/*.ts", "**/*.tsx", "**/*.js", "**/*.lock", "**/*.json"],
        "exclude": ["tests/fixtures/**"],
        "max_file_bytes": 200,
    }
    source, examples, rejections = read_all(spec)
    assert source.listing == "walk"
    paths = sorted(e.metadata["path"] for e in examples)
    assert paths == ["package.json", "src/core/mod.rs", "src/lib.rs", "ts/src/types.ts"]
    skipped = dict(source.skipped)
    assert skipped["link outside root"] == 1
    assert skipped["lock file"] == 2  # Cargo.lock, package-lock.json
    assert skipped["excluded"] == 1
    assert skipped["over max_file_bytes"] >= 4
    assert "node_modules/left-pad/index.js" not in str(
        source.skip_samples
    )  # gitignored: never listed
    assert sorted((r.reason, r.file) for r in rejections) == [
        ("skipped: binary", "src/blob.rs"),
        ("skipped: generated", "gen.rs"),
    ]


def test_repo_vendored_without_gitignore(tmp_path):
    (tmp_path / "node_modules/pkg").mkdir(parents=True)
    (tmp_path / "node_modules/pkg/index.js").write_text("module.exports = 1;\n")
    (tmp_path / "main.js").write_text("console.log(1);\n")
    source, examples, _ = read_all({"type": "repo", "path": str(tmp_path)})
    assert [e.metadata["path"] for e in examples] == ["main.js"]
    assert source.skip_samples["vendored"] == ["node_modules/pkg/index.js"]


def test_build_tool_wrappers_are_vendored(tmp_path):
    """Gradle's and Maven's wrapper scripts (generated by the tool, in every JVM repository; the
    POSIX one is beyond tree-sitter-bash's reach) are vendored, as GitHub Linguist counts them."""
    files = {
        "gradlew": '#!/bin/sh\nfor i do printf %s\\n "$i"; done\n',
        "gradlew.bat": "@rem Gradle startup script for Windows\r\n",
        "gradle/wrapper/gradle-wrapper.properties": "distributionUrl=https://example.org/g.zip\n",
        "mvnw": "#!/bin/sh\necho maven\n",
        ".mvn/wrapper/maven-wrapper.properties": "wrapperVersion=3.3.2\n",
        "app/build.gradle": "plugins { id 'java' }\n",
        "app/src/Main.java": "class Main {}\n",
        "docs/gradlew-usage.md": "# Using gradlew\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    source, examples, _ = read_all({"type": "repo", "path": str(tmp_path)})
    assert sorted(e.metadata["path"] for e in examples) == [
        "app/build.gradle",
        "app/src/Main.java",
        "docs/gradlew-usage.md",
    ]
    assert sorted(source.skip_samples["vendored"]) == sorted(
        [n for n in files if "wrapper" in n or n in ("gradlew", "gradlew.bat", "mvnw")]
    )


def test_skipped_files_are_reported_in_the_same_order_whatever_their_arrival(tmp_path):
    """The listing thread and the main thread both count skips, in an order that changes from
    run to run; rejected.jsonl and report.json list them by file all the same."""
    skips = [("vendored", f"vendor/{i:02d}.js") for i in range(12)]
    skips += [("generated", "a.pb.go"), ("binary", "logo.png"), ("generated", "b.pb.go")]
    reports = []
    for order in (skips, skips[::-1], skips[5:] + skips[:5]):
        source = SOURCES.get("repo")(options(SOURCES, {"type": "repo", "path": str(tmp_path)}), "s")
        for reason, file in order:
            source.skip(reason, file)
        reports.append((source.skipped_files, source.skipped, source.skip_samples))
    assert reports[0] == reports[1] == reports[2]
    files, counts, samples = reports[0]
    assert files[0] == ("generated", "a.pb.go") and len(files) == 15
    assert list(counts.items()) == [("vendored", 12), ("generated", 2), ("binary", 1)]
    assert samples["vendored"] == [f"vendor/{i:02d}.js" for i in range(10)]


def test_repo_uses_git_ls_files(tmp_path):
    import subprocess

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "ignored.py").write_text("y = 2\n")
    (tmp_path / ".gitignore").write_text("ignored.py\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    spec = {"type": "repo", "path": str(tmp_path), "include": ["*.py"]}
    source = SOURCES.get("repo")(options(SOURCES, spec), "s", tmp_path / "log.txt")
    assert list(source.tasks()) == ["a.py"]
    assert source.listing == "git ls-files"


# -- hf_dataset -----------------------------------------------------------------------------
def test_hf_dataset_local_jsonl(tmp_path):
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]},
            {
                "messages": [
                    {"role": "user", "content": "U2"},
                    {"role": "assistant", "content": "A2"},
                ]
            },
        ],
    )
    _, examples, rejections = read_all({"type": "hf_dataset", "path": str(path)})
    assert rejections == []
    assert [e.messages[1]["content"] for e in examples] == ["A", "A2"]
    assert [e.metadata["row"] for e in examples] == [0, 1]
    assert all(isinstance(e, Example) for e in examples)
