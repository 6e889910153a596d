"""The job API through a real ``recipe serve`` (uvicorn on 127.0.0.1, started and stopped by each
test), running real jobs: the quickstart's data stage, and its training when a test must stop a
job that runs a tool."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest

from runner.serve.jobs import JOB_TYPES
from tests.serve.conftest import QUICKSTART, ROOT, wait_job

pytestmark = pytest.mark.xdist_group("serve")


def submit(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/v1/jobs", json=body)


def events_of(client: httpx.Client, job_id: str) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}/events").json()["data"]


@pytest.mark.slow
def test_a_data_job_from_submit_to_artifacts(serve):
    server = serve()
    client = server.client()
    response = submit(client, type="data", recipe_path=QUICKSTART, idempotency_key="qs-1")
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    # The same idempotency key returns the same job; another request under it is refused.
    again = submit(client, type="data", recipe_path=QUICKSTART, idempotency_key="qs-1")
    assert again.status_code == 202 and again.json()["id"] == job_id
    assert again.headers["Idempotent-Replayed"] == "true"
    other = submit(client, type="run", recipe_path=QUICKSTART, idempotency_key="qs-1")
    assert other.status_code == 409

    job = wait_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["stage"] == "data" and job["progress"]["fraction"] == 1.0
    assert job["metrics"]["data"]["counts.train"] == 40
    train = job["artifacts"]["data/train.jsonl"]
    assert train == f"{job['run_dir']}/data/train.jsonl"
    assert Path(train).read_text().startswith("{")
    assert job["links"]["data/report.md"].startswith("/v1/runs/quickstart/files/")
    report = client.get(job["links"]["data/report.md"])
    assert report.status_code == 200 and "train" in report.text

    # Events: JSON, then the same as Server-Sent Events, resumed after an id.
    events = events_of(client, job_id)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    kinds = [(e["event"], e.get("status")) for e in events]
    assert kinds == [
        ("status", "queued"),
        ("status", "running"),
        ("plan", None),
        ("stage", "running"),
        ("stage", "ran"),
        ("status", "succeeded"),
    ]
    with client.stream(
        "GET",
        f"/v1/jobs/{job_id}/events",
        headers={"Accept": "text/event-stream", "Last-Event-ID": "3"},
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert [b.splitlines()[0] for b in blocks] == ["id: 4", "id: 5", "id: 6"]
    assert blocks[-1].splitlines()[1] == "event: status"
    assert json.loads(blocks[-1].splitlines()[2].removeprefix("data: "))["status"] == "succeeded"

    # The log from an offset, and from where it ended.
    log = client.get(f"/v1/jobs/{job_id}/logs", params={"offset": 0})
    assert "data: running" in log.text and "data: done in" in log.text
    end = int(log.headers["X-Next-Offset"])
    assert end == int(log.headers["X-Log-Size"]) > 0
    tail = client.get(f"/v1/jobs/{job_id}/logs", params={"offset": end - 20})
    assert tail.text == log.text[-20:] if log.text.isascii() else True
    assert client.get(f"/v1/jobs/{job_id}/logs", params={"offset": end}).text == ""

    # A second data job reuses the finished stage.
    second = submit(client, type="data", recipe_path=QUICKSTART).json()["id"]
    assert wait_job(client, second)["status"] == "succeeded"
    assert [e["status"] for e in events_of(client, second) if e["event"] == "stage"] == ["cached"]

    # Listing: filters and pages.
    listed = client.get("/v1/jobs", params={"status": "succeeded", "type": "data"}).json()
    assert [j["id"] for j in listed["data"]] == [second, job_id]
    page = client.get("/v1/jobs", params={"limit": 1}).json()
    assert [j["id"] for j in page["data"]] == [second] and page["has_more"] is True
    page = client.get("/v1/jobs", params={"limit": 1, "after": second}).json()
    assert [j["id"] for j in page["data"]] == [job_id] and page["has_more"] is False
    assert client.get("/v1/jobs", params={"status": "running"}).json()["data"] == []
    assert client.get("/v1/jobs", params={"status": "nope"}).status_code == 422

    # Runs: the recipe, its run folder with the finished data stage, its files and nothing else.
    assert [r["name"] for r in client.get("/v1/runs").json()["data"]] == ["quickstart"]
    runs = client.get("/v1/runs/quickstart").json()
    (run,) = runs["runs"]
    assert runs["latest"] == run["id"] and run["path"] == job["run_dir"]
    assert run["stages"]["data"]["status"] == "finished"
    assert run["stages"]["train"]["status"] == "not finished"
    assert client.get(run["files"]["data/report.md"]).status_code == 200
    assert client.get("/v1/runs/quickstart/files/../../etc/hostname").status_code == 404
    assert client.get("/v1/runs/nope").status_code == 404
    assert client.get("/v1/jobs/job-nope").status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409  # already finished


BAD_RECIPE = textwrap.dedent(
    """\
    recipe: 1
    name: broken
    sources:
      - type: instructions
        path: datasets/quickstart/instructions.jsonl
    filters:
      - type: lenght
    model:
      base: tiny:qwen2
    train:
      epochs: -1
      learning_rat: 0.1
    """
)


def test_a_recipe_with_mistakes_gets_422_with_the_clis_lines(serve, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.yaml").write_text(BAD_RECIPE)
    server = serve("--data-root", str(data))
    client = server.client()
    cli = subprocess.run(
        [sys.executable, "-m", "runner.cli", "validate", str(data / "broken.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 2
    by_path = submit(client, type="data", recipe_path=str(data / "broken.yaml"))
    assert by_path.status_code == 422
    body = by_path.json()["error"]
    assert body["message"] == cli.stderr.strip()  # the very lines `recipe validate` prints
    assert [(p["line"], p["column"], p["key"]) for p in body["problems"]] == [
        (7, 5, "filters[0].type"),
        (11, 3, "train.epochs"),
        (12, 3, "train.learning_rat"),
    ]
    assert "did you mean 'length'" in body["problems"][0]["message"]
    # Sent as text: the same lines, the file named `recipe`.
    as_text = submit(client, type="data", recipe=BAD_RECIPE).json()["error"]
    assert as_text["message"].splitlines()[0].startswith("recipe:7:5: filters[0].type: ")
    shown = (
        str((data / "broken.yaml").relative_to(ROOT))
        if data.is_relative_to(ROOT)
        else str(data / "broken.yaml")
    )
    assert as_text["message"] == body["message"].replace(shown, "recipe")
    # A bad override names --set, as on the command line.
    override = submit(client, type="data", recipe_path=QUICKSTART, overrides={"train.epochz": 1})
    assert override.json()["error"]["message"].startswith("--set: train.epochz: unknown key")
    # Requests that are not jobs.
    assert submit(client, type="train", recipe_path=QUICKSTART).status_code == 422
    assert submit(client, type="data").json()["error"]["message"] == (
        "request: recipe_path: give exactly one of recipe_path and recipe\n1 error in recipe"
    )
    assert submit(client, type="data", recipe_path=QUICKSTART, until="train").status_code == 422
    unknown = submit(client, type="run", recipe_path=QUICKSTART, until="hub").json()["error"]
    assert "does not run the hub stage" in unknown["message"]
    huge = client.post(
        "/v1/jobs",
        content=b"{" + b" " * (3 << 20) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    if not JOB_TYPES["sweep"].available():
        sweep = submit(client, type="sweep", recipe_path=QUICKSTART).json()["error"]
        assert "sweep jobs need the `recipe sweep` command" in sweep["message"]
    assert client.get("/v1/jobs").json()["data"] == []  # nothing was queued


def recipe_text(path: str, **extra: str) -> str:
    lines = [
        "recipe: 1",
        "name: confined",
        "sources:",
        "  - type: instructions",
        f"    path: {path}",
        "model:",
        "  base: tiny:qwen2",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_paths_outside_the_data_roots_are_refused(serve, tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "ok.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (data / "escape.jsonl").symlink_to("/etc/hostname")
    (data / "base.yaml").write_text("recipe: 1\n")
    (tmp_path / "outside.yaml").write_text(recipe_text("/etc/hostname"))
    server = serve("--data-root", str(data))  # the first root: ROOT (see the fixture)
    client = server.client()
    cases = [
        (recipe_text("/etc/hostname"), "recipe:5:5: sources[0].path: '/etc/hostname' is outside"),
        (
            recipe_text(f"{data}/sub/../ok.jsonl"),
            "'..' is not allowed in a path sent to the job API",
        ),
        (
            recipe_text(str(data / "escape.jsonl")),
            "escape.jsonl' is outside the server's data folders",
        ),
        (
            recipe_text(str(data / "ok.jsonl"), extends="/etc/passwd"),
            "recipe:8:1: extends: '/etc/passwd' is outside",
        ),
        (
            recipe_text(str(data / "ok.jsonl"), prompt="{template: /etc/x.jinja}"),
            "prompt.template: '/etc/x.jinja' is outside",
        ),
    ]
    for text, expected in cases:
        response = submit(client, type="data", recipe=text)
        assert response.status_code == 422, text
        assert expected in response.json()["error"]["message"], response.json()
    by_path = [
        (str(tmp_path / "outside.yaml"), "is outside the server's data folders"),
        ("../etc/passwd", "'..' is not allowed"),
        ("/etc/passwd", "'/etc/passwd' is outside"),
    ]
    for path, expected in by_path:
        response = submit(client, type="data", recipe_path=path)
        assert response.status_code == 422 and expected in response.json()["error"]["message"]
    override = submit(
        client, type="data", recipe_path=QUICKSTART, overrides={"sources.0.path": "/etc/hostname"}
    )
    assert (
        "--set: sources[0].path: '/etc/hostname' is outside" in override.json()["error"]["message"]
    )
    # Inside the roots, the same recipe is taken (and its `extends:` too).
    fine = submit(
        client,
        type="data",
        recipe=recipe_text(str(data / "ok.jsonl"), extends=str(data / "base.yaml")),
    )
    assert fine.status_code == 202, fine.json()
    client.post(f"/v1/jobs/{fine.json()['id']}/cancel")


COMMAND_CHECK = {"eval.checks": [{"type": "command", "run": ["true"]}], "eval.allow_commands": True}


def test_eval_commands_are_refused_unless_the_server_allows_them(serve, tmp_path):
    client = serve().client()
    refused = submit(client, type="run", recipe_path=QUICKSTART, overrides=COMMAND_CHECK)
    assert refused.status_code == 422
    assert refused.json()["error"]["problems"][0]["key"] == "eval.checks[0].type"
    assert "command checks do not run for jobs sent to the job API" in refused.text
    assert (
        submit(client, type="eval", recipe_path=QUICKSTART, overrides=COMMAND_CHECK).status_code
        == 422
    )
    # A job that stops before the evaluation runs no command: it is taken.
    data_only = submit(client, type="data", recipe_path=QUICKSTART, overrides=COMMAND_CHECK)
    assert data_only.status_code == 202
    client.post(f"/v1/jobs/{data_only.json()['id']}/cancel")
    (tmp_path / "allowing").mkdir()
    allowed = serve("--allow-commands", folder=tmp_path / "allowing").client()
    taken = submit(allowed, type="run", recipe_path=QUICKSTART, overrides=COMMAND_CHECK)
    assert taken.status_code == 202
    allowed.post(f"/v1/jobs/{taken.json()['id']}/cancel")


def test_off_localhost_a_token_is_required(serve, tmp_path):
    refused = subprocess.run(
        [sys.executable, "-m", "runner.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in __import__("os").environ.items() if k != "RECIPE_SERVE_TOKEN"},
    )
    assert refused.returncode == 2
    assert "give --token (or set RECIPE_SERVE_TOKEN)" in refused.stderr
    server = serve(host="0.0.0.0", token="s3cret-token-for-tests")
    assert httpx.get(server.url + "/v1/jobs").status_code == 401
    assert server.client(token="wrong").get("/v1/jobs").status_code == 401
    assert server.client().get("/v1/jobs").status_code == 200
    assert httpx.get(server.url + "/").status_code == 200  # the page itself asks for the token
    assert (
        httpx.get(
            server.url + "/v1/jobs", cookies={"recipe_token": "s3cret-token-for-tests"}
        ).status_code
        == 200
    )
    # A cookie is not enough to change anything (no cross-site POST).
    posted = httpx.post(
        server.url + "/v1/jobs",
        json={"type": "data", "recipe_path": QUICKSTART},
        cookies={"recipe_token": "s3cret-token-for-tests"},
    )
    assert posted.status_code == 401


def tree_of(job_id: str) -> list[psutil.Process]:
    """The job's worker and everything under it."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "runner.serve.worker" in cmdline and any(job_id in a for a in cmdline):
            return [process, *process.children(recursive=True)]
    return []


def wait_for_tool(job_id: str, timeout: float = 120) -> list[psutil.Process]:
    """The job's process tree once the train stage's tool (Axolotl) has started under it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = tree_of(job_id)
        if len(tree) >= 2:
            return tree
        time.sleep(0.2)
    pytest.fail(f"no tool started under {job_id}")


@pytest.mark.slow
def test_cancel_stops_the_whole_process_tree_and_keeps_finished_stages(serve):
    client = serve().client()
    job_id = submit(client, type="run", recipe_path=QUICKSTART, until="train").json()["id"]
    wait_job(client, job_id, statuses=("running",), stage="train")
    tree = wait_for_tool(job_id)
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = wait_job(client, job_id, timeout=60)
    assert job["status"] == "cancelled" and job["error"] is None
    gone, alive = psutil.wait_procs(tree, timeout=30)
    assert alive == []
    assert "data/train.jsonl" in job["artifacts"]
    # The finished data stage is reused by the next job.
    again = submit(client, type="data", recipe_path=QUICKSTART).json()["id"]
    assert wait_job(client, again)["status"] == "succeeded"
    assert [e["status"] for e in events_of(client, again) if e["event"] == "stage"] == ["cached"]


@pytest.mark.slow
def test_a_restart_keeps_every_job(serve, tmp_path):
    server = serve("--max-concurrent", "1")
    client = server.client()
    running = submit(client, type="run", recipe_path=QUICKSTART, until="train").json()["id"]
    queued = submit(
        client, type="data", recipe_path=QUICKSTART, overrides={"name": "second"}
    ).json()["id"]
    wait_job(client, running, statuses=("running",), stage="train")
    tree = wait_for_tool(running)
    assert client.get(f"/v1/jobs/{queued}").json()["status"] == "queued"
    server.stop(9)  # SIGKILL: the worker and its tool outlive the server
    assert all(p.is_running() for p in tree)

    restarted = serve("--max-concurrent", "1", folder=tmp_path)
    client = restarted.client()
    job = client.get(f"/v1/jobs/{running}").json()
    assert job["status"] == "interrupted" and "submit it again" in job["error"]
    gone, alive = psutil.wait_procs(tree, timeout=30)  # the leftover worker was stopped
    assert alive == []
    assert wait_job(client, queued)["status"] == "succeeded"  # the queued job ran
    # Submitted again, the interrupted job continues from its finished data stage.
    again = submit(client, type="data", recipe_path=QUICKSTART).json()["id"]
    assert wait_job(client, again)["status"] == "succeeded"
    assert [e["status"] for e in events_of(client, again) if e["event"] == "stage"] == ["cached"]
    listed = {j["id"]: j["status"] for j in client.get("/v1/jobs").json()["data"]}
    assert listed == {running: "interrupted", queued: "succeeded", again: "succeeded"}
