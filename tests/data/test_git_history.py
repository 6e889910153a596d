"""`type: git_history` on a real local repository made by the test: message -> diff, with merges,
bots, vendored paths and oversize diffs skipped and counted, and secrets scrubbed."""

from __future__ import annotations

import json
import subprocess

from runner.data.build import run
from runner.run.context import StageContext


def git(root, *args, author="Ana Dev <ana@example.org>"):
    name, _, address = author.partition(" <")
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": address.rstrip(">"),
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": address.rstrip(">"),
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        "HOME": str(root.parent),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def commit(root, files, message, **kwargs):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message, **kwargs)


def history(tmp_path):
    root = tmp_path / "clone"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, {"calc.py": "def add(a, b):\n    return a + b\n"}, "Add calc.add")
    commit(
        root,
        {"calc.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"},
        "Add calc.sub\n\nFixes #12: users asked for subtraction.",
    )
    commit(root, {"vendor/lib.py": "x = 1\n"}, "Vendor lib")
    commit(root, {"deps.txt": "a==2\n"}, "Bump a", author="dependabot[bot] <bot@github.com>")
    commit(root, {"big.py": "x = 1\n" * 5000}, "Add a big table")
    commit(
        root, {"settings.py": 'API_TOKEN = "ghp_Zx9Y8w7V6u5T4s3R2q1P0o9N8m7L6k5J4i3H"\n'}, "Config"
    )
    git(root, "checkout", "-q", "-b", "side")
    commit(root, {"side.py": "def side():\n    return 1\n"}, "Side work")
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge side", "side")
    return root


def test_git_history_source(recipe_factory, tmp_path, tokens):
    root = history(tmp_path)
    recipe = recipe_factory(
        [{"type": "git_history", "name": "log", "path": str(root), "max_diff_bytes": 4000}],
        filters=[{"type": "secrets"}],
        split={"train": 1.0, "val": 0.0, "test": 0.0},
        eval={"enabled": False},
    )
    ctx = StageContext(stage="data", out=tmp_path / "data", run_dir=tmp_path)
    run(recipe, ctx, tokens=tokens, progress=False)
    rows = [json.loads(x) for x in (ctx.out / "train.jsonl").read_text().splitlines()]
    by_subject = {r["messages"][-2]["content"].split("\n")[0]: r for r in rows}
    assert sorted(r["messages"][-2]["content"] for r in rows) == sorted(
        [
            "Add calc.add",
            "Add calc.sub\n\nFixes #12: users asked for subtraction.",
            "Config",
            "Side work",
        ]
    )
    sub = by_subject["Add calc.sub"]
    diff = sub["messages"][-1]["content"]
    assert (
        diff.startswith("```diff\ndiff --git a/calc.py b/calc.py\n") and "+def sub(a, b):" in diff
    )
    assert sub["meta"]["files"] == ["calc.py"] and sub["meta"]["language"] == "python"
    config = by_subject["Config"]["messages"][-1]["content"]
    assert "ghp_Zx9Y8w7" not in config and "<REDACTED_SECRET>" in config
    report = json.loads((ctx.out / "report.json").read_text())
    files = report["files"]["log"]
    assert files["skipped_by_reason"] == {
        "merge commit": 1,
        "bot author": 1,
        "no kept file": 1,
        "diff over max_diff_bytes": 1,
    }
    assert (files["listed"], files["with_examples"]) == (8, 4)
    everything = "".join(p.read_text() for p in ctx.out.glob("*.jsonl"))
    assert "ghp_Zx9Y8w7" not in everything
    log = (ctx.out / "logs" / "data.log").read_text()
    assert "ana@example.org" not in log and "ghp_" not in log  # git's output is not logged


def test_a_new_commit_changes_the_input_hash(tmp_path):
    """The stage key hashes a source folder's files; a history source also reads HEAD."""
    from runner.hashing import HashCache, git_head

    root = tmp_path / "clone"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, {"a.py": "x = 1\n"}, "First")
    before = HashCache(None).path_hash(root)
    git(root, "commit", "-q", "--allow-empty", "-m", "Second, no file changed")
    assert git_head(root) is not None
    assert HashCache(None).path_hash(root) != before
