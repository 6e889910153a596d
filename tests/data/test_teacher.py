"""The teacher extractor against a real HTTP server on 127.0.0.1 that answers, refuses, fails,
stalls and talks nonsense: every failure is counted and kept with its reason, the build
finishes, the API key goes nowhere but the Authorization header, and the cache rebuilds the
same dataset once the endpoint is gone."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.data import build
from runner.llamacpp.server import free_port
from tests.helpers import recipe_of, run_stage, stage_context

SECRET = "sk-test-0123456789abcdef-never-stored"
TIMEOUT = 1.0

# One function per behaviour of the fake teacher (picked by the function's name in the prompt).
REPO = """
def ok_add(a, b):
    return a + b


def ok_mail(address):
    # bounces go to postmaster@example.org
    return address.lower()


def boom_server(x):
    return x


def slow_answer(x):
    return x


def garbage_body(x):
    return x


def empty_answer(x):
    return x


def cut_answer(x):
    return x


def junk_text(x):
    return x
"""


class FakeTeacher(ThreadingHTTPServer):
    """An OpenAI-compatible `/v1/chat/completions` whose behaviour depends on the unit's name."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: dict[str, int] = {}
        self.authorizations: set[str] = set()
        self.prompts: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: FakeTeacher

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        name = re.search(r"`(\w+)`", prompt).group(1)
        with self.server.lock:
            self.server.hits[name] = self.server.hits.get(name, 0) + 1
            self.server.authorizations.add(self.headers.get("Authorization", ""))
            self.server.prompts.append(prompt)
        if name.startswith("boom"):
            return self.reply(500, b'{"error": "model crashed"}')
        if name.startswith("slow"):
            time.sleep(TIMEOUT * 2)
        if name.startswith("garbage"):
            return self.reply(200, b"<html>502 Bad Gateway</html>")
        content, finish = f"The function `{name}` returns its argument, tidied.", "stop"
        if name == "ok_mail":
            content += " Questions go to alice@example.com."
        if name.startswith("empty"):
            content = "  "
        if name.startswith("cut"):
            finish = "length"
        if name.startswith("junk"):
            content = "%%%% ---- !!!!"
        completion = {
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
        }
        self.reply(200, json.dumps(completion).encode())

    def reply(self, status: int, data: bytes):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (the slow case)
            pass


def teacher_recipe(tmp_path: Path, base_url: str, **teacher):
    repo = tmp_path / "repo"
    if not repo.exists():
        repo.mkdir()
        (repo / "tools.py").write_text(REPO, encoding="utf-8")
    section = {
        "base_url": base_url,
        "model": "fake-teacher",
        "api_key_env": "TEACHER_TEST_KEY",
        "timeout": TIMEOUT,
        "retries": 1,
        "backoff": 0.05,
        "concurrency": 3,
        "cache_dir": str(tmp_path / "cache"),
        **teacher,
    }
    config = {
        "sources": [
            {
                "type": "repo",
                "path": str(repo),
                "extract": [{"type": "teacher", "task": "explain"}, {"type": "file_completion"}],
            }
        ],
        "filters": [{"type": "emails"}],
        "teacher": section,
        "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        "eval": {"enabled": False},
        "train": {"seq_len": 512},
    }
    return recipe_of(config, tmp_path)


def build_data(recipe, run_dir: Path) -> Path:
    ctx = stage_context(run_dir, "data")
    run_stage(build.run, recipe, ctx)
    return ctx.out


def rows(folder: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def teacher_rows(folder: Path) -> list[dict]:
    return [r for r in rows(folder, "train.jsonl") if r["meta"].get("task") == "teacher"]


def test_every_failure_is_counted_and_the_cache_rebuilds_without_the_endpoint(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TEACHER_TEST_KEY", SECRET)
    with FakeTeacher() as server:
        recipe = teacher_recipe(tmp_path, server.url)
        first = build_data(recipe, tmp_path / "run1")
    taught = teacher_rows(first)
    assert sorted(r["meta"]["unit"] for r in taught) == ["ok_add", "ok_mail"]
    for row in taught:
        assert row["meta"]["teacher"] == "fake-teacher" and row["meta"]["teacher_task"] == "explain"
        assert row["messages"][-1]["content"].startswith("The function `ok_")
        assert "def ok_" in row["messages"][-2]["content"]  # the user turn shows the code
    # The answer passed the recipe's filters: the e-mail the teacher wrote is redacted.
    mail = next(r for r in taught if r["meta"]["unit"] == "ok_mail")
    assert "alice@example.com" not in mail["messages"][-1]["content"]
    # ...and the document was redacted before anything was sent.
    assert not any("postmaster@example.org" in p for p in server.prompts)

    reasons = {
        r["detail"].split("'")[1]: r["reason"]
        for r in rows(first, "rejected.jsonl")
        if r["stage"] == "extract:teacher"
    }
    assert reasons == {
        "boom_server": "teacher server error",
        "slow_answer": "teacher timeout",
        "garbage_body": "teacher bad response",
        "empty_answer": "teacher empty answer",
        "cut_answer": "teacher truncated answer",
        "junk_text": "teacher garbage answer",
    }
    assert server.hits["boom_server"] == 2 and server.hits["slow_answer"] == 2  # retried once
    assert server.hits["garbage_body"] == 1  # a 200 that is not a completion is not retried
    report = json.loads((first / "report.json").read_text())
    outcomes = report["teacher"]["outcomes"]
    assert outcomes["answered"] == 2 and outcomes["server error"] == 1
    assert outcomes["timeout"] == 1 and outcomes["bad response"] == 1
    assert report["teacher"]["requests_sent"] == 8 + 2  # 8 units, 2 retries
    assert "teacher server error" in (first / "report.md").read_text()

    # The key went in the header, and nowhere else.
    assert server.authorizations == {f"Bearer {SECRET}"}
    stored = [*first.rglob("*"), *(tmp_path / "cache").rglob("*"), *(tmp_path / "run1").rglob("*")]
    for path in stored:
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path

    # Endpoint gone, key gone, fresh run folder: the cached answers give the same dataset.
    monkeypatch.delenv("TEACHER_TEST_KEY")
    second = build_data(recipe, tmp_path / "run2")
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        assert (second / name).read_bytes() == (first / name).read_bytes()
    again = json.loads((second / "report.json").read_text())["teacher"]
    assert again["requests_sent"] == 0 and again["outcomes"]["cached"] == 5


def test_a_refused_endpoint_is_given_up_on_and_the_build_finishes(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    recipe = teacher_recipe(
        tmp_path, url, api_key_env=None, give_up_after=3, retries=1, concurrency=1
    )
    out = build_data(recipe, tmp_path / "run")
    assert not teacher_rows(out)
    assert rows(out, "train.jsonl")  # file_completion still gave examples
    teacher = [r for r in rows(out, "rejected.jsonl") if r["stage"] == "extract:teacher"]
    reasons = [r["reason"] for r in teacher]
    assert reasons == ["teacher refused"] * 3 + ["teacher gave up"] * 5
    assert (
        "Connection refused" in teacher[0]["detail"] and "after 2 attempts" in teacher[0]["detail"]
    )
    assert all(r["teacher"] == "fake-teacher" for r in teacher)
    report = json.loads((out / "report.json").read_text())["teacher"]
    assert report["requests_sent"] == 3 * 2


def test_the_budget_stops_asking(tmp_path, monkeypatch):
    monkeypatch.setenv("TEACHER_TEST_KEY", SECRET)
    with FakeTeacher() as server:
        recipe = teacher_recipe(tmp_path, server.url, max_requests=2, concurrency=1, retries=0)
        out = build_data(recipe, tmp_path / "run")
    assert sum(server.hits.values()) == 2
    outcomes = json.loads((out / "report.json").read_text())["teacher"]["outcomes"]
    assert outcomes["budget spent"] == 6


def test_recipe_rules(tmp_path):
    from runner.recipe.problems import RecipeErrors

    source = {"type": "repo", "path": str(tmp_path), "extract": [{"type": "teacher"}]}
    with pytest.raises(RecipeErrors, match="needs a `teacher:` section"):
        recipe_of({"sources": [source]}, tmp_path)
    docs = {"type": "docs", "path": str(tmp_path), "extract": [{"type": "teacher"}]}
    teacher = {"base_url": "http://127.0.0.1:1/v1", "model": "m"}
    with pytest.raises(RecipeErrors, match="use task: qa for docs"):
        recipe_of({"sources": [docs], "teacher": teacher}, tmp_path)
    recipe = recipe_of({"sources": [source], "teacher": teacher}, tmp_path)
    entry = recipe.sources[0].extract[0]
    assert "Explain what the following" in entry.prompt and entry.system  # defaults resolved
    assert recipe.value_at("sources.0.extract.0.prompt") == entry.prompt  # in the stage key
