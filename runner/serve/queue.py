"""The queue: Huey with its SQLite storage (no server to run), consumed by ``--max-concurrent``
threads inside ``recipe serve``. Each task starts one job's worker process, follows its events
into the jobs table, and records how it ended.

Durable: the jobs table is the record and Huey's queue file keeps what is waiting. When the
server starts again, queued jobs run, and a job that was running when the server stopped is
marked ``interrupted`` (its worker, if it survived, is stopped): submitting it again continues
from the stages it finished.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

from huey import SqliteHuey
from huey.consumer import Consumer

from runner import proc
from runner.errors import StageError
from runner.serve.jobs import FINISHED, Job, JobStore, append_event, read_events

POLL_S = 0.3
INTERRUPTED = (
    "the server stopped while this job ran; submit it again to continue from its finished stages"
)


class _Consumer(Consumer):
    """Huey's consumer, run in the server's process: uvicorn owns the signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class _Follower:
    """Reads a job's new events and keeps its row up to date (stage, progress, metrics...)."""

    def __init__(self, store: JobStore, job: Job):
        self.store, self.job_id = store, job.id
        self.folder = store.folder(job.id)
        self.seen = 0
        self.stages: list[str] = []
        self.done: list[str] = []
        self.values: dict[str, Any] = {
            "stage": job.stage,
            "progress": job.progress,
            "metrics": job.metrics,
            "artifacts": job.artifacts,
            "run_dir": job.run_dir,
        }

    def apply(self) -> None:
        events = read_events(self.folder, self.seen)
        if not events:
            return
        for event in events:
            self.seen = event["id"]
            self._take(event)
        self.store.update(self.job_id, **self.values)

    def _take(self, event: dict[str, Any]) -> None:
        kind, values = event.get("event"), self.values
        progress = dict(values["progress"])
        if kind == "plan":
            self.stages = list(event["stages"])
            values["run_dir"] = event["run_dir"]
            progress.update(stages_total=len(self.stages), stages_done=0)
        elif kind == "stage":
            values["stage"] = event["stage"]
            progress["stage_status"] = event["status"]
            if event["status"] in ("ran", "cached", "failed") and event["stage"] not in self.done:
                self.done.append(event["stage"])
            for key in ("step", "total", "loss", "eta"):
                progress.pop(key, None)
            if event["status"] in ("ran", "cached"):
                progress["stages_done"] = len(self.done)
                values["metrics"] = {**values["metrics"], **_metrics(event)}
                outputs = {f"{event['stage']}/{k}": v for k, v in event["outputs"].items()}
                values["artifacts"] = {**values["artifacts"], **outputs}
        elif kind == "progress":
            progress.update({k: event.get(k) for k in ("step", "total", "loss", "eta")})
        total = progress.get("stages_total") or 0
        if total:
            part = 0.0
            if progress.get("total") and progress.get("stage_status") == "running":
                part = min(1.0, (progress.get("step") or 0) / progress["total"])
            progress["fraction"] = round((progress.get("stages_done", 0) + part) / total, 4)
        values["progress"] = progress


def _metrics(event: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a finished stage's summary (train: steps and losses; eval: rates)."""
    numbers = {}
    for key, value in (event.get("summary") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            numbers[key] = value
        elif isinstance(value, dict):
            numbers.update(
                {
                    f"{key}.{k}": v
                    for k, v in value.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
    return {event["stage"]: numbers} if numbers else {}


class JobRunner:
    """Queues jobs in Huey and runs them, at most ``max_concurrent`` at a time."""

    def __init__(self, store: JobStore, max_concurrent: int = 1):
        self.store = store
        self.max_concurrent = max_concurrent
        self.huey = SqliteHuey(
            "recipe-serve", filename=str(store.state_dir / "queue.db"), results=False
        )
        self._task = self.huey.task(name="run_job")(self.run)
        self.children: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.consumer: _Consumer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        self.consumer = _Consumer(
            self.huey,
            workers=self.max_concurrent,
            worker_type="thread",
            periodic=False,
            initial_delay=0.1,
            max_delay=1.0,
            check_worker_health=False,
        )
        self.consumer.start()

    def recover(self) -> None:
        """After a restart: running jobs are interrupted, queued ones are queued again."""
        for job in self.store.with_status("running"):
            self._stop_leftover(job)
            self.store.update(
                job.id, status="interrupted", error=INTERRUPTED, finished_at=time.time()
            )
            append_event(self.store.folder(job.id), {"event": "status", "status": "interrupted"})
        pending = {task.args[0] for task in self.huey.pending() if task.args}
        for job in self.store.with_status("queued"):
            if job.id not in pending:
                self._task(job.id)

    def _stop_leftover(self, job: Job) -> None:
        """A worker that outlived its server (killed with SIGKILL) is stopped: its job is
        interrupted, and what it holds (a stage's lock) must be free for a resubmit."""
        import psutil

        if not job.pid:
            return
        with contextlib.suppress(psutil.Error):
            if str(self.store.folder(job.id)) in psutil.Process(job.pid).cmdline():
                proc.stop_tree(job.pid, grace=5)

    def shutdown(self) -> None:
        """Stop taking jobs; stop the running ones (they become ``interrupted``)."""
        self.stopping = True
        if self.consumer is not None:
            self.consumer.stop_flag.set()
        with self.lock:
            pids = [child.pid for child in self.children.values()]
        stoppers = [threading.Thread(target=proc.stop_tree, args=(pid,)) for pid in pids]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        if self.consumer is not None:
            self.consumer.shutdown_timeout = 30
            self.consumer.stop(graceful=True)

    # -- jobs --------------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        append_event(self.store.folder(job.id), {"event": "status", "status": "queued"})
        self._task(job.id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once; stop a running one's whole process tree (its status
        becomes ``cancelled`` when the worker has ended). Finished stages stay reusable."""
        job = self.store.get(job_id)
        if job is None or job.status in FINISHED:
            return job
        self.store.update(job_id, cancel_requested=1)
        if self.store.update(job_id, when="queued", status="cancelled", finished_at=time.time()):
            append_event(self.store.folder(job_id), {"event": "status", "status": "cancelled"})
        else:
            with self.lock:
                child = self.children.get(job_id)
            if child is not None:
                threading.Thread(target=proc.stop_tree, args=(child.pid,), daemon=True).start()
        return self.store.get(job_id)

    def run(self, job_id: str) -> None:
        """The Huey task: claim the job (it may have been cancelled while queued), run its
        worker, follow it, record the end."""
        if self.stopping:
            return  # still 'queued' in the table: queued again at the next start
        if not self.store.update(job_id, when="queued", status="running", started_at=time.time()):
            return
        folder = self.store.folder(job_id)
        append_event(folder, {"event": "status", "status": "running"})
        job = self.store.get(job_id)
        assert job is not None
        follower = _Follower(self.store, job)
        argv = proc.python_argv("-m", "runner.serve.worker", str(folder))
        try:
            child = proc.start(argv, log_file=folder / "job.log", env={"PYTHONUNBUFFERED": "1"})
        except StageError as exc:
            self._finish(job_id, 1, str(exc), follower)
            return
        with self.lock:
            self.children[job_id] = child
        self.store.update(job_id, pid=child.pid)
        current = self.store.get(job_id)
        if self.stopping or (current is not None and current.cancel_requested):
            threading.Thread(target=proc.stop_tree, args=(child.pid,), daemon=True).start()
        try:
            while child.poll() is None:
                follower.apply()
                time.sleep(POLL_S)
            follower.apply()
        finally:
            with self.lock:
                self.children.pop(job_id, None)
        self._finish(job_id, child.returncode, None, follower)

    def _finish(self, job_id: str, code: int, error: str | None, follower: _Follower) -> None:
        folder = self.store.folder(job_id)
        result: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        job = self.store.get(job_id)
        if self.stopping:
            status, error = "interrupted", INTERRUPTED
        elif job is not None and job.cancel_requested:
            status, error = "cancelled", None
        elif code == 0:
            status = "succeeded"
        else:
            status = "failed"
            error = error or result.get("error") or f"the job's process ended with status {code}"
        self.store.update(
            job_id, status=status, error=error, exit_code=code, finished_at=time.time()
        )
        append_event(folder, {"event": "status", "status": status, "error": error})
