"""compute.target on a real Ray cluster: a local head on 127.0.0.1, started and stopped here.

The quickstart's data and train stages go to the cluster as a Ray job through
``compute.target`` alone (its profile in the user's ~/.config, which the job never sees: it
carries the target). The first job is stopped on the cluster by Ctrl-C on ``recipe run`` as
soon as training has written its first checkpoint; the second reuses the data stage and the
interrupted train stage's tokenized data, resumes from that checkpoint, and leaves the
artifacts in the profile's ``runs_dir``. Then a ``recipe serve`` on 127.0.0.1 takes a data job
for the same recipe: the job API sends it to the cluster and shows its status and log.
Run it under the machine's heavy-job lock: it trains (eight steps) and runs a Ray head.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from runner.llamacpp.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray-head")]

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
VENV_BIN = Path(sys.executable).parent
# Eight optimizer steps, a checkpoint every two: the first job is stopped after its first
# checkpoint with steps left to run (a stop takes a second or two to reach the trainer).
OVERRIDES = [
    "compute.target=local-ray",
    "train.epochs=1",
    "train.max_steps=8",
    "train.save_steps=2",
]
START_TIMEOUT_S = 180
JOB_TIMEOUT_S = 900


def _ray_or_skip() -> None:
    """Ray must be here wherever its wheel exists (`make setup` installs the ray extra); the
    test is skipped only where pyproject's marker says Ray publishes no wheel."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    ray = next(Requirement(r) for r in extras["ray"] if Requirement(r).name == "ray")
    if ray.marker is not None and not ray.marker.evaluate():
        pytest.skip(f"Ray publishes no wheel for this platform ({ray.marker})")
    if not (VENV_BIN / "ray").exists():
        pytest.fail(
            f"Ray is not installed in {VENV_BIN.parent}: `make setup` installs the ray extra"
        )


def _processes_of(marker: str) -> list[int]:
    """Pids whose command line holds ``marker`` (this head's own temp dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head with its dashboard (the Jobs API) on 127.0.0.1; the dashboard's URL."""
    _ray_or_skip()
    temp_dir = tempfile.mkdtemp(prefix="rr-ray-", dir="/tmp")  # short: Ray's socket paths
    dashboard = free_port()
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),  # the job's `recipe` runs this checkout
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RECIPE_TARGET", None)
    argv = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats"]
    argv += ["--node-ip-address", "127.0.0.1", "--port", str(free_port())]
    argv += ["--ray-client-server-port", str(free_port())]
    argv += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard)]
    argv += ["--dashboard-agent-listen-port", str(free_port())]
    argv += ["--num-cpus", "2", "--include-dashboard", "true", "--temp-dir", temp_dir]
    log = Path(f"{temp_dir}.log")
    head = subprocess.Popen(
        argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2).read()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Ray head did not start: {log.read_text()[-2000:]}")
                time.sleep(1)
        yield address
    finally:
        # Only this head's processes: its process group, then whatever still names its temp dir.
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        for pid in _processes_of(temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", temp_dir, str(log)], check=False)


def _client(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen, Path]:
    """`recipe run` of the quickstart on the target, as a user types it."""
    argv = [sys.executable, "-m", "runner.cli", "run", str(QUICKSTART), "--until", "train"]
    argv += [a for o in OVERRIDES for a in ("--set", o)]
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": str(ROOT)}
    env.pop("RECIPE_TARGET", None)
    log = tmp_path / log_name
    child = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    return child, log


def test_quickstart_as_a_ray_job_stopped_and_resumed(ray_head, tmp_path, monkeypatch):
    runs = tmp_path / "cluster-runs"
    profile = tmp_path / "config" / "recipe-runner" / "compute.yaml"
    profile.parent.mkdir(parents=True)
    target = {"backend": "ray", "address": ray_head, "runs_dir": str(runs)}
    profile.write_text(yaml.safe_dump({"targets": {"local-ray": target}}))

    # 1. Submitted, then stopped on the cluster (Ctrl-C) once training has a checkpoint.
    first, first_log = _client(tmp_path, "first.log")
    partial = runs / "quickstart" / "stages" / ".partial"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not list(partial.glob("train-*/checkpoint-*/trainer_state.json")):
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail(f"no checkpoint from the first job:\n{first_log.read_text()[-3000:]}")
        time.sleep(0.5)
    time.sleep(0.5)  # the checkpoint's last file closes
    first.send_signal(signal.SIGINT)
    assert first.wait(120) == 130, first_log.read_text()[-3000:]
    text = first_log.read_text()
    assert "submitted Ray job raysubmit_" in text and "stopping Ray job" in text
    assert "STOPPED" in text
    stages = runs / "quickstart" / "stages"
    assert list(stages.glob("data-*/stage.manifest.json"))
    assert not list(stages.glob("train-*/stage.manifest.json"))

    # 2. The same command again: data reused, training resumed, artifacts in runs_dir.
    second, second_log = _client(tmp_path, "second.log")
    assert second.wait(JOB_TIMEOUT_S) == 0, second_log.read_text()[-3000:]
    text = second_log.read_text()
    assert "data: cached" in text
    assert "note: reused the tokenized data of the interrupted attempt" in text
    assert "note: resumed from checkpoint-" in text
    run_dir = (runs / "quickstart" / "latest").resolve()
    assert (run_dir / "train" / "adapter_model.safetensors").stat().st_size > 0
    assert f"runs of quickstart on local-ray: {run_dir}" in text
    assert not (tmp_path / "runs").exists()  # nothing ran on the submitting side

    # 3. The job API: a data job of the same recipe goes to the cluster; its status and log.
    from tests.serve.conftest import Server, wait_job

    api = tmp_path / "api"
    api.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the server's profiles
    server = Server(api, "--data-root", str(ROOT)).start()
    try:
        with server.client() as client:
            overrides = dict(o.split("=", 1) for o in OVERRIDES)
            body = {
                "type": "data",
                "recipe_path": "recipes/quickstart.yaml",
                "overrides": overrides,
            }
            job = client.post("/v1/jobs", json=body).json()
            done = wait_job(client, job["id"], timeout=JOB_TIMEOUT_S)
            log = client.get(f"/v1/jobs/{job['id']}/logs").text
        assert done["status"] == "succeeded", (done, log[-3000:])
        assert "submitted Ray job raysubmit_" in log and "data: cached" in log
        assert f"runs of quickstart on local-ray: {runs / 'quickstart'}" in log
        assert not (api / "runs" / "quickstart").exists()
    finally:
        server.stop()
