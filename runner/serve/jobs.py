"""Jobs: the kinds the API takes, the request, the checks it passes before anything is queued,
and the SQLite table that is the record of every job.

A job's files live in ``<state>/jobs/<id>/``: ``job.json`` (what the worker runs),
``events.jsonl`` (one event per line; an event's id is its line number), ``job.log`` (the
worker's output with the running stage's log copied in) and ``result.json`` (how it ended).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.paths import outside_roots
from runner.recipe.load import Limits, load_recipe, load_recipe_text
from runner.recipe.problems import Located, Problem, RecipeErrors

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe


@dataclass(frozen=True)
class JobType:
    """A kind of job: the ``recipe`` command that does it and the stage it stops after."""

    command: str  # `recipe <command>`; "run" runs the pipeline in the worker itself
    until: str | None = None  # the last stage; None: the request's `until` (or every stage)
    takes_until: bool = False

    def available(self) -> bool:
        """The command exists in this installation (``recipe sweep`` comes with its module)."""
        return importlib.util.find_spec(f"runner.commands.{self.command}") is not None


JOB_TYPES: dict[str, JobType] = {
    "data": JobType("run", until="data"),  # what `recipe data` builds, into the same run folder
    "run": JobType("run", takes_until=True),
    "eval": JobType("run", until="eval"),  # up to the evaluation, reusing what is finished
    "sweep": JobType("sweep"),  # `recipe sweep RECIPE --set ... --runs-dir DIR`
}

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINISHED = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
# Where a recipe sent as text is taken to live (its relative paths resolve against its folder).
TEXT_RECIPE_NAME = "recipe.yaml"


class JobRequest(BaseModel):
    """``POST /v1/jobs``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["data", "run", "sweep", "eval"]
    """What to do: build the dataset, run the recipe (to `until`), sweep it, or evaluate it."""
    recipe_path: str | None = Field(None, max_length=4096)
    """A recipe file under one of the server's data folders (relative: to the first one)."""
    recipe: str | None = None
    """The recipe as YAML text (read as if it were `recipe.yaml` in the first data folder)."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """`--set` values by key path, e.g. {"train.epochs": 1}."""
    until: str | None = Field(None, max_length=64)
    """`run` jobs: the last stage to run."""
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)
    """A second request with the same key returns the first job instead of queueing another."""


@dataclass(frozen=True)
class Policy:
    """What the server lets a job read and run."""

    data_roots: tuple[Path, ...]
    runs_dir: Path
    allow_commands: bool = False


class Refused(Exception):
    """A request that is not queued: 422 with the CLI's messages (or ``status``)."""

    def __init__(self, problems: list[Located], status: int = 422):
        self.problems = problems
        self.status = status
        super().__init__(str(RecipeErrors(problems)))


def refusal(key: str, message: str, status: int = 422) -> Refused:
    return Refused([Located("request", 0, 0, key, message)], status)


def override_args(overrides: dict[str, Any]) -> list[str]:
    """``{"train.epochs": 1}`` -> ``["train.epochs=1"]`` (typed by the schema, like ``--set``)."""
    args = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args.append(f"{key}={text}")
    return args


def job_spec(request: JobRequest, policy: Policy) -> dict[str, Any]:
    """What the worker needs to run the request (``job.json``), checked as far as it can be
    without loading the recipe. Raises ``Refused``."""
    kind = JOB_TYPES[request.type]
    if not kind.available():
        raise refusal(
            "type",
            f"{request.type} jobs need the `recipe {kind.command}` command, which this "
            "installation does not have",
        )
    if (request.recipe_path is None) == (request.recipe is None):
        raise refusal("recipe_path", "give exactly one of recipe_path and recipe")
    if request.until is not None and not kind.takes_until:
        raise refusal("until", f"{request.type} jobs stop where they stop; until is for run jobs")
    root = policy.data_roots[0]
    spec: dict[str, Any] = {
        "type": request.type,
        "command": kind.command,
        "until": kind.until or request.until,
        "overrides": override_args(request.overrides),
        "runs_dir": str(policy.runs_dir),
        "data_roots": [str(r) for r in policy.data_roots],
        "allow_commands": policy.allow_commands,
    }
    if request.recipe is not None:
        spec.update(recipe_text=request.recipe, recipe_file=str(root / TEXT_RECIPE_NAME))
        return spec
    path = request.recipe_path or ""
    refused = outside_roots(path, root / path, policy.data_roots, refuse_parent=True)
    if refused:
        raise refusal("recipe_path", refused)
    spec["recipe_file"] = str(root / path)
    return spec


def _runs_eval(recipe: Recipe, until: str | None, command: str) -> bool:
    from runner.errors import UserError
    from runner.pipeline import select_stages

    if command != "run":
        return recipe.eval.enabled
    try:
        return "eval" in select_stages(recipe, until)
    except UserError:
        return recipe.eval.enabled


def _no_commands(spec: dict[str, Any], recipe: Recipe) -> Iterator[Problem]:
    """Eval ``command`` checks run a recipe's shell commands: never for a job sent over HTTP,
    unless the server was started with ``--allow-commands``."""
    if not _runs_eval(recipe, spec["until"], spec["command"]):
        return
    for index, check in enumerate(recipe.eval.checks):
        if check.type == "command":
            yield Problem(
                ("eval", "checks", index, "type"),
                "command checks do not run for jobs sent to the job API "
                "(the server was not started with --allow-commands)",
            )


def load_job_recipe(spec: dict[str, Any]) -> Recipe:
    """The job's recipe, loaded under the server's limits: every local path it names resolves
    (symlinks followed) under a data folder, a recipe sent as text names no ``..``, and eval
    commands are refused unless allowed. Raises ``RecipeErrors`` with file, line and key."""
    text = spec.get("recipe_text")
    roots = tuple(Path(r) for r in spec["data_roots"])
    limits = Limits(
        check_path=partial(outside_roots, roots=roots, refuse_parent=text is not None),
        rules=() if spec["allow_commands"] else (partial(_no_commands, spec),),
    )
    if text is not None:
        return load_recipe_text(text, spec["recipe_file"], spec["overrides"], limits=limits)
    return load_recipe(spec["recipe_file"], spec["overrides"], limits=limits)


def check_request(request: JobRequest, policy: Policy) -> tuple[dict[str, Any], Recipe]:
    """The worker's spec and the loaded recipe, or ``Refused`` with every problem."""
    spec = job_spec(request, policy)
    try:
        recipe = load_job_recipe(spec)
    except RecipeErrors as exc:
        raise Refused(exc.problems) from None
    if spec["command"] == "run" and spec["until"] is not None:
        from runner.errors import UserError
        from runner.pipeline import select_stages

        try:
            select_stages(recipe, spec["until"])
        except UserError as exc:
            raise refusal("until", str(exc).removeprefix(f"--until {spec['until']}: ")) from None
    return spec, recipe


# -- the record ----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    recipe TEXT NOT NULL,
    request TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    run_dir TEXT,
    stage TEXT,
    progress TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    artifacts TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    exit_code INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at, id);
"""
_JSON_COLUMNS = ("request", "progress", "metrics", "artifacts")


@dataclass
class Job:
    id: str
    type: str
    status: str
    recipe: str
    request: dict[str, Any]
    idempotency_key: str | None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    pid: int | None = None
    cancel_requested: int = 0
    run_dir: str | None = None
    stage: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    exit_code: int | None = None


class JobStore:
    """The SQLite jobs table (WAL, one connection per call: the API's threads and the queue's
    worker threads all use it) and each job's folder."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.path = state_dir / "jobs.db"
        state_dir.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def folder(self, job_id: str) -> Path:
        return self.state_dir / "jobs" / job_id

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        for column in _JSON_COLUMNS:
            data[column] = json.loads(data[column])
        return Job(**data)

    def create(
        self,
        kind: str,
        recipe: str,
        request: dict[str, Any],
        spec: dict[str, Any],
        idempotency_key: str | None,
    ) -> tuple[Job, bool]:
        """A new queued job (its folder and ``job.json`` written first), or the job that
        already has this idempotency key (then False)."""
        job_id = f"job-{uuid.uuid4().hex[:16]}"
        folder = self.folder(job_id)
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps(spec, indent=2))
        try:
            with closing(self._connect()) as db, db:
                db.execute(
                    "INSERT INTO jobs (id, type, status, recipe, request, idempotency_key,"
                    " created_at) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                    (job_id, kind, recipe, json.dumps(request), idempotency_key, time.time()),
                )
        except sqlite3.IntegrityError:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            existing = self.by_key(idempotency_key or "")
            if existing is None:
                raise
            return existing, False
        return self.get(job_id), True  # type: ignore[return-value]

    def get(self, job_id: str) -> Job | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def by_key(self, key: str) -> Job | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return self._job(row) if row else None

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        after: str | None = None,
        limit: int = 20,
    ) -> tuple[list[Job], bool]:
        """Newest first; ``after`` is the id of the last job of the previous page."""
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if kind:
            where.append("type = ?")
            args.append(kind)
        if after:
            cursor = self.get(after)
            if cursor is not None:
                where.append("(created_at < ? OR (created_at = ? AND id < ?))")
                args += [cursor.created_at, cursor.created_at, cursor.id]
        sql = "SELECT * FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with closing(self._connect()) as db:
            rows = db.execute(sql, (*args, limit + 1)).fetchall()
        return [self._job(r) for r in rows[:limit]], len(rows) > limit

    def with_status(self, status: str) -> list[Job]:
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status = ? ORDER BY created_at", (status,)
            ).fetchall()
        return [self._job(r) for r in rows]

    def update(self, job_id: str, *, when: str | None = None, **values: Any) -> bool:
        """Set columns; with ``when``, only if the job's status is that (True if it was)."""
        sets = []
        args: list[Any] = []
        for column, value in values.items():
            sets.append(f"{column} = ?")
            args.append(json.dumps(value) if column in _JSON_COLUMNS else value)
        sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?"
        args.append(job_id)
        if when is not None:
            sql += " AND status = ?"
            args.append(when)
        with closing(self._connect()) as db, db:
            return db.execute(sql, args).rowcount == 1


# -- events --------------------------------------------------------------------------------------


def append_event(folder: Path, event: dict[str, Any]) -> None:
    """One event as one line (written whole, so a reader never sees half of one)."""
    line = json.dumps({"time": round(time.time(), 3), **event}, default=str) + "\n"
    with (folder / "events.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(line)


def read_events(folder: Path, after: int = 0) -> list[dict[str, Any]]:
    """Events after the ``after``-th, each with its ``id`` (its line number, from 1)."""
    try:
        lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    events = []
    for number, line in enumerate(lines, 1):
        if number <= after:
            continue
        if not line.endswith("\n"):
            break  # being written
        events.append({"id": number, **json.loads(line)})
    return events
