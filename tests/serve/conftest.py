"""A real ``recipe serve`` on 127.0.0.1, started and stopped by the test, and what its tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runner.llamacpp.server import free_port

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = "recipes/quickstart.yaml"
START_S = 60
JOB_S = 300


class Server:
    """``python -m runner.cli serve`` in its own process group, with its output in a file."""

    def __init__(self, folder: Path, *args: str, host: str = "127.0.0.1", token: str | None = None):
        self.folder, self.args, self.host, self.token = folder, args, host, token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        argv = [sys.executable, "-m", "runner.cli", "serve", "--host", self.host]
        argv += ["--port", str(self.port), "--runs-dir", str(self.folder / "runs")]
        argv += [*self.args]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("RECIPE_SERVE_TOKEN", None)
        if self.token:
            argv += ["--token", self.token]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the server did not start: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: uvicorn's graceful shutdown. SIGKILL: the server alone dies (its job
        workers live in sessions of their own and survive it)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        self.process.wait(timeout=60)

    def client(self, token: str | None = None) -> httpx.Client:
        token = token or self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def serve(tmp_path):
    """Start servers with ``serve(*args)``; all are stopped at the end of the test."""
    started: list[Server] = []

    def start(*args: str, folder: Path | None = None, **kw) -> Server:
        server = Server(folder or tmp_path, "--data-root", str(ROOT), *args, **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def wait_job(
    client: httpx.Client,
    job_id: str,
    statuses=("succeeded", "failed", "cancelled", "interrupted"),
    timeout: float = JOB_S,
    stage: str | None = None,
) -> dict:
    """Poll a job until its status is one of ``statuses`` (and, if given, its stage runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses and (
            stage is None
            or (job["stage"] == stage and job["progress"].get("stage_status") == "running")
        ):
            return job
        if stage is not None and job["status"] in ("succeeded", "failed", "cancelled"):
            pytest.fail(f"{job_id} ended before its {stage} stage ran: {job}")
        time.sleep(0.3)
    pytest.fail(
        f"{job_id} not {statuses} within {timeout}s: {client.get(f'/v1/jobs/{job_id}').json()}"
    )
