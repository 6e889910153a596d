"""The process one job runs in: ``python -m runner.serve.worker JOB_DIR``.

It loads the job's recipe under the server's limits again (the files may have changed since
the request was checked), runs the real pipeline (``run_pipeline``, as ``recipe run`` does) and
writes what a watcher needs into the job's folder: ``events.jsonl`` (the pipeline's events, and
the training step, total and loss read from the train stage's log as it grows), the output of
the running stage copied into its own output (``job.log``), and ``result.json`` last.

The server starts it in its own session and cancels it with SIGTERM to that session's group:
SIGTERM ends the run here like Ctrl-C ends ``recipe run`` (the running tool's own process group
is killed by ``runner.proc``), so finished stages stay reusable.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runner.errors import StageError, UserError
from runner.run.stages import SPECS
from runner.serve.jobs import append_event, load_job_recipe

# A progress event at most this often (the train stage's bar moves many times a second).
PROGRESS_EVERY_S = 1.0


def say(message: str) -> None:
    print(message, flush=True)


class Events:
    """Appends events; follows the running stage's log into this process's output."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.Lock()
        self.follower: threading.Thread | None = None
        self.done = threading.Event()
        self.run_dir: Path | None = None

    def emit(self, event: dict[str, Any]) -> None:
        with self.lock:
            append_event(self.folder, event)

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "plan":
            self.run_dir = Path(event["run_dir"])
        if event.get("event") == "stage" and event.get("status") not in ("running", "waiting"):
            self.stop_following()
        if event.get("event") == "stage" and event.get("status") == "running":
            self.follow(event["stage"], Path(event["log"]))
        if event.get("event") == "stage" and "outputs" in event:
            event = {**event, "outputs": self.run_paths(event)}
        self.emit(event)

    def run_paths(self, event: dict[str, Any]) -> dict[str, str]:
        """Outputs as paths in the run folder (``<run>/gguf/x.gguf``) rather than the store."""
        folder = event.get("folder")
        if not folder or self.run_dir is None:
            return event["outputs"]
        linked = self.run_dir / SPECS[event["stage"]].folder
        out = {}
        for name, path in event["outputs"].items():
            inside = Path(path).is_relative_to(folder)
            out[name] = str(linked / Path(path).relative_to(folder)) if inside else path
        return out

    def follow(self, stage: str, log: Path) -> None:
        self.done.clear()
        self.follower = threading.Thread(target=self._copy, args=(stage, log), daemon=True)
        self.follower.start()

    def stop_following(self) -> None:
        if self.follower is not None:
            self.done.set()
            self.follower.join(timeout=10)
            self.follower = None

    def _copy(self, stage: str, log: Path) -> None:
        """Copy the stage's log as it grows; for the train stage, report step and loss."""
        from runner.train.progress import TrainProgress

        progress = TrainProgress() if stage == "train" else None
        while not log.exists():
            if self.done.wait(0.2):
                return
        last_sent = 0.0
        with log.open(encoding="utf-8", errors="replace") as fh:
            while True:
                line = fh.readline()
                if not line:
                    if self.done.is_set():
                        return
                    time.sleep(0.2)
                    continue
                sys.stdout.write(line if line.endswith("\n") else line + "\n")
                sys.stdout.flush()
                if progress is None:
                    continue
                try:
                    changed = progress.feed(line.rstrip("\n"))
                except StageError:  # a NaN loss: the train stage stops the run itself
                    continue
                now = time.monotonic()
                finished = progress.total is not None and progress.step >= progress.total
                if changed and (now - last_sent >= PROGRESS_EVERY_S or finished):
                    last_sent = now
                    self.emit(
                        {
                            "event": "progress",
                            "stage": stage,
                            "step": progress.step,
                            "total": progress.total,
                            "loss": progress.last_loss,
                            "eta": progress.eta,
                        }
                    )


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_job(folder: Path) -> int:
    spec = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    events = Events(folder)
    result: dict[str, Any] = {"exit_code": 0, "error": None}
    try:
        recipe = load_job_recipe(spec)
        for warning in recipe.warnings:
            say(warning)
        if spec["command"] == "run":
            from runner.pipeline import run_pipeline

            outcome = run_pipeline(
                recipe,
                until=spec["until"],
                root=Path(spec["runs_dir"]),
                say=say,
                on_event=events.on_event,
            )
            result.update(outcome.to_json())
            if outcome.error is not None:
                raise outcome.error
        else:
            result["exit_code"] = _other_command(spec, recipe, folder)
            if result["exit_code"]:
                result["error"] = f"`recipe {spec['command']}` exited with {result['exit_code']}"
    except (UserError, StageError) as exc:
        say(f"error: {exc}")
        result.update(exit_code=exc.exit_code, error=str(exc))
    finally:
        events.stop_following()
    (folder / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return int(result["exit_code"])


def _other_command(spec: dict[str, Any], recipe: Any, folder: Path) -> int:
    """A job done by another ``recipe`` command (``sweep``), given the recipe as a file; its
    output goes to the job's log."""
    import yaml

    from runner import proc

    path = Path(spec["recipe_file"])
    if spec.get("recipe_text") is not None:  # the checked recipe, every path made absolute
        path = folder / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False), encoding="utf-8")
        overrides = []
    else:
        overrides = [a for o in spec["overrides"] for a in ("--set", o)]
    argv = proc.python_argv("-m", "runner.cli", spec["command"], str(path), *overrides)
    proc.run(
        [*argv, "--runs-dir", spec["runs_dir"]], stage=spec["type"], log_file=folder / "job.log"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_job(Path(argv[0]))
    except SystemExit as exc:
        say(f"stopped (exit status {exc.code}); finished stages are kept")
        raise


if __name__ == "__main__":
    sys.exit(main())
