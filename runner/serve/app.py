"""The HTTP side of ``recipe serve``: the job API (in the shape of OpenAI's fine-tuning jobs),
the run folders, and the page at ``/``.

Safe by default: ``recipe serve`` binds 127.0.0.1 and refuses any other address without a
token; with a token every route but the page itself and ``/healthz`` needs ``Authorization:
Bearer <token>`` (compared in constant time; safe GETs such as a report link opened from the
page may carry it as the ``recipe_token`` cookie instead). Request bodies are size-limited.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse

from runner.serve import runs
from runner.serve.jobs import (
    FINISHED,
    JOB_TYPES,
    STATUSES,
    Job,
    JobRequest,
    JobStore,
    Policy,
    Refused,
    check_request,
    read_events,
)
from runner.serve.queue import JobRunner

PAGE = Path(__file__).with_name("page.html")
# A recipe may be 1 MiB (runner.recipe.yamlfile.MAX_BYTES); JSON escaping can double it.
MAX_BODY_BYTES = 2 << 20
LOG_CHUNK = 256 << 10
SSE_HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class ServeConfig:
    state_dir: Path
    runs_dir: Path
    data_roots: tuple[Path, ...]
    token: str | None = None
    max_concurrent: int = 1
    allow_commands: bool = False
    max_body_bytes: int = MAX_BODY_BYTES


def error(status: int, kind: str, message: str, problems: list[dict[str, Any]] | None = None):
    body: dict[str, Any] = {"type": kind, "message": message}
    if problems is not None:
        body["problems"] = problems
    return JSONResponse({"error": body}, status_code=status)


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is refused with 413 before it is read whole
    (by its Content-Length, or while it streams in)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        response = error(413, "too_large", f"request bodies may be at most {self.limit:,} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(config: ServeConfig) -> FastAPI:
    store = JobStore(config.state_dir)
    runner = JobRunner(store, config.max_concurrent)
    policy = Policy(config.data_roots, config.runs_dir, config.allow_commands)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner.start()
        try:
            yield
        finally:
            await asyncio.to_thread(runner.shutdown)

    app = FastAPI(title="recipe-runner jobs", lifespan=lifespan, docs_url="/docs")
    app.state.store, app.state.runner, app.state.config = store, runner, config

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        open_paths = ("/", "/healthz")
        if config.token and request.url.path not in open_paths:
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" and request.method in ("GET", "HEAD"):
                value = request.cookies.get("recipe_token", "")
            if not hmac.compare_digest(value.strip().encode(), config.token.encode()):
                return error(401, "unauthorized", "this server needs Authorization: Bearer <token>")
        return await call_next(request)

    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = [
            {"key": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        message = "\n".join(f"request: {p['key']}: {p['message']}" for p in problems)
        return error(422, "invalid_request", message, problems)

    def job_json(job: Job) -> dict[str, Any]:
        data = {
            "object": "job",
            "id": job.id,
            "type": job.type,
            "status": job.status,
            "recipe": job.recipe,
            "request": job.request,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "stage": job.stage,
            "progress": job.progress,
            "metrics": job.metrics,
            "error": job.error,
            "exit_code": job.exit_code,
            "run_dir": job.run_dir,
            "artifacts": job.artifacts,
            "links": {},
        }
        base = (config.runs_dir / job.recipe).resolve()
        paths = dict(job.artifacts)
        if job.run_dir:
            for rel in runs.LINKED:
                if (Path(job.run_dir) / rel).is_file():
                    paths[rel] = str(Path(job.run_dir) / rel)
        for name, path in paths.items():
            absolute = Path(path).absolute()
            if absolute.is_relative_to(base) and absolute.is_file():
                data["links"][name] = runs.url(job.recipe, absolute.relative_to(base).as_posix())
        return data

    def find(job_id: str) -> Job | JSONResponse:
        job = store.get(job_id)
        return job if job is not None else error(404, "not_found", f"no job {job_id}")

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/healthz")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/v1/jobs", status_code=202)
    def submit(body: JobRequest) -> Response:
        request = body.model_dump()
        if body.idempotency_key:
            existing = store.by_key(body.idempotency_key)
            if existing is not None:
                return _replay(existing, request)
        try:
            spec, recipe = check_request(body, policy)
        except Refused as exc:
            problems = [
                {
                    "file": p.file,
                    "line": p.line,
                    "column": p.column,
                    "key": p.key,
                    "message": p.message,
                    "text": p.render(),
                }
                for p in exc.problems
            ]
            return error(exc.status, "invalid_recipe", str(exc), problems)
        job, new = store.create(body.type, recipe.name, request, spec, body.idempotency_key)
        if not new:
            return _replay(job, request)
        runner.submit(job)
        return JSONResponse(job_json(job), status_code=202)

    def _replay(job: Job, request: dict[str, Any]) -> Response:
        if job.request != request:
            return error(
                409,
                "idempotency_conflict",
                f"idempotency_key {job.idempotency_key!r} was used for another request ({job.id})",
            )
        current = store.get(job.id) or job
        return JSONResponse(
            job_json(current), status_code=202, headers={"Idempotent-Replayed": "true"}
        )

    @app.get("/v1/jobs")
    def list_jobs(
        status: str | None = Query(None),
        type: str | None = Query(None),
        limit: int = Query(20, ge=1, le=100),
        after: str | None = Query(None),
    ) -> Response:
        if status is not None and status not in STATUSES:
            return error(422, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
        if type is not None and type not in JOB_TYPES:
            return error(422, "invalid_request", f"type must be one of {', '.join(JOB_TYPES)}")
        jobs, more = store.list(status=status, kind=type, after=after, limit=limit)
        return JSONResponse(
            {"object": "list", "data": [job_json(j) for j in jobs], "has_more": more}
        )

    @app.get("/v1/jobs/{job_id}")
    def get_job(job_id: str) -> Response:
        job = find(job_id)
        return job if isinstance(job, JSONResponse) else JSONResponse(job_json(job))

    @app.post("/v1/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> Response:
        job = find(job_id)
        if isinstance(job, JSONResponse):
            return job
        if job.status in FINISHED:
            return error(409, "finished", f"job {job_id} already {job.status}")
        job = runner.cancel(job_id) or job
        return JSONResponse(job_json(job), status_code=202)

    @app.get("/v1/jobs/{job_id}/events")
    async def events(job_id: str, request: Request, after: int = Query(0, ge=0)) -> Response:
        job = find(job_id)
        if isinstance(job, JSONResponse):
            return job
        folder = store.folder(job_id)
        if "text/event-stream" not in request.headers.get("accept", ""):
            data = read_events(folder, after)
            return JSONResponse({"object": "list", "data": data, "has_more": False})
        last_id = request.headers.get("last-event-id", "")
        start = int(last_id) if last_id.isdigit() else after
        return StreamingResponse(
            _event_stream(job_id, folder, start, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _event_stream(job_id: str, folder: Path, last: int, request: Request):
        quiet = 0.0
        while True:
            batch = read_events(folder, last)
            for event in batch:
                last = event["id"]
                yield (
                    f"id: {event['id']}\nevent: {event.get('event', 'message')}\n"
                    f"data: {json.dumps(event, default=str)}\n\n"
                )
            job = store.get(job_id)
            if job is None or (job.status in FINISHED and not read_events(folder, last)):
                return
            if await request.is_disconnected():
                return
            quiet = 0.0 if batch else quiet + 0.3
            if quiet >= SSE_HEARTBEAT_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.3)

    @app.get("/v1/jobs/{job_id}/logs")
    def logs(
        job_id: str, offset: int = Query(0, ge=0), limit: int = Query(LOG_CHUNK, ge=1, le=4 << 20)
    ) -> Response:
        """The job's log from byte ``offset``: ``X-Next-Offset`` is where to ask next."""
        job = find(job_id)
        if isinstance(job, JSONResponse):
            return job
        path = store.folder(job_id) / "job.log"
        size = path.stat().st_size if path.exists() else 0
        data = b""
        if offset < size:
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(limit)
        return Response(
            data,
            media_type="text/plain; charset=utf-8",
            headers={
                "X-Next-Offset": str(offset + len(data)),
                "X-Log-Size": str(size),
                "X-Job-Status": job.status,
            },
        )

    @app.get("/v1/runs")
    def list_runs() -> dict[str, Any]:
        return {"object": "list", "data": runs.list_runs(config.runs_dir)}

    @app.get("/v1/runs/{name}")
    def recipe_runs(name: str) -> Response:
        found = runs.recipe_runs(config.runs_dir, name)
        if found is None:
            return error(404, "not_found", f"no runs of a recipe named {name!r}")
        return JSONResponse(found)

    @app.get("/v1/runs/{name}/files/{rel:path}")
    def run_file(name: str, rel: str) -> Response:
        path = runs.run_file(config.runs_dir, name, rel)
        if path is None:
            return error(404, "not_found", f"no file {rel!r} in the runs of {name!r}")
        return FileResponse(path)

    return app
