"""The Ray backend: a run is a Ray job, submitted through the cluster's Jobs API and followed.

The job's entrypoint is the node command (``recipe run RECIPE --runs-dir RUNS``) with the target
carried in ``$RECIPE_TARGET`` (the profile's ``runtime_env`` plus that variable), so on the
cluster it runs the pipeline instead of submitting again. Training across several workers uses
Axolotl's Ray Train integration (``runner.train.launch.ray_train_keys``); one worker trains in
the job's driver, as on a laptop. The client follows the job: its status, its log as it grows,
and Ctrl-C stops it on the cluster (the finished stages stay in the runs folder, and an
interrupted training resumes from its last checkpoint on the next run).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from runner.compute.profiles import CARRIED, Reach, Target
from runner.errors import StageError, UserError

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobFailed(StageError):
    """The job ended without success; ``exit_code`` is its driver's when Ray knows it."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__("ray", message)
        self.exit_code = exit_code


def submission(target: Target, recipe_name: str, command: Sequence[str]) -> dict[str, Any]:
    """What is sent to the Jobs API: pure, pinned by golden files, shown by ``recipe plan``."""
    profile = target.profile
    env_vars = {**profile.runtime_env.get("env_vars", {}), CARRIED: target.carried()}
    out: dict[str, Any] = {
        "address": profile.address,
        "entrypoint": shlex.join(command),
        "runtime_env": {**profile.runtime_env, "env_vars": env_vars},
        "metadata": {"recipe": recipe_name, "target": target.name},
    }
    if profile.entrypoint_num_cpus is not None:
        out["entrypoint_num_cpus"] = profile.entrypoint_num_cpus
    if profile.entrypoint_num_gpus is not None:
        out["entrypoint_num_gpus"] = profile.entrypoint_num_gpus
    return out


def reach(target: Target, timeout: float = 10.0) -> Reach:
    """Ask the Jobs API for its version (plain HTTP: no Ray import, so a quick answer)."""
    url = f"{target.profile.address}/api/version"
    tried = f"GET {url}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return Reach(False, tried, f"HTTP {exc.code}", "is `address` the Ray dashboard's URL?")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reach(
            False,
            tried,
            f"no answer ({reason})",
            "start the cluster (`ray start --head --dashboard-host 0.0.0.0`) or fix `address`",
        )
    except ValueError:
        return Reach(False, tried, "the answer is not JSON", "is `address` the Ray dashboard?")
    return Reach(True, tried, f"Ray {data.get('ray_version', '?')} at {target.profile.address}")


def _client(target: Target) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise UserError(
            f"compute.target: the {target.describe()} needs Ray's job client here: "
            "pip install 'ray[default]' (`make setup` installs it)"
        ) from None
    try:
        return JobSubmissionClient(target.profile.address)
    except (ConnectionError, RuntimeError) as exc:
        raise target.unreachable(
            Reach(False, f"the Jobs API at {target.profile.address}", str(exc))
        ) from None


def submit(target: Target, sub: dict[str, Any]) -> tuple[Any, str]:
    """Submit the job; returns the client and the job's id."""
    checked = reach(target)
    if not checked.ok:
        raise target.unreachable(checked)
    client = _client(target)
    kwargs = {k: v for k, v in sub.items() if k != "address"}
    return client, client.submit_job(**kwargs)


def _tail(client: Any, job_id: str, write: Callable[[str], None]) -> None:
    """Write the job's log as it grows until the job ends (the log stream, else polling)."""

    async def stream() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    try:
        asyncio.run(stream())
        return
    except KeyboardInterrupt:
        raise
    except Exception:  # the log stream is a websocket: when a proxy refuses it, poll instead
        pass
    shown = 0
    while True:
        logs = client.get_job_logs(job_id)
        write(logs[shown:])
        shown = len(logs)
        if _status(client, job_id) in TERMINAL:
            write(client.get_job_logs(job_id)[shown:])
            return
        time.sleep(2.0)


def _status(client: Any, job_id: str) -> str:
    status = client.get_job_status(job_id)
    return getattr(status, "value", str(status))


def _wait_terminal(client: Any, job_id: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    status = _status(client, job_id)
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = _status(client, job_id)
    return status


def follow(
    target: Target,
    client: Any,
    job_id: str,
    *,
    write: Callable[[str], None],
    say: Callable[[str], None],
) -> str:
    """Follow the job to its end; Ctrl-C (or the SIGTERM that cancels a job API job) stops it
    on the cluster. Returns "SUCCEEDED", or raises ``JobFailed`` (its driver's exit status), or
    re-raises the interruption once the job is stopped."""
    address = target.profile.address
    try:
        _tail(client, job_id, write)
        status = _wait_terminal(client, job_id, 60)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGTERM in a job API worker
        say(f"stopping Ray job {job_id} on the cluster...")
        client.stop_job(job_id)
        status = _wait_terminal(client, job_id, 60)
        say(f"Ray job {job_id}: {status}")
        raise
    if status == "SUCCEEDED":
        return status
    info = client.get_job_info(job_id)
    code = getattr(info, "driver_exit_code", None)
    detail = f" ({info.message})" if getattr(info, "message", None) else ""
    raise JobFailed(
        f"job {job_id} {status.lower()}{detail}; its log: `ray job logs {job_id} --address "
        f"{address}`",
        exit_code=code if isinstance(code, int) and code > 0 else 1,
    )
