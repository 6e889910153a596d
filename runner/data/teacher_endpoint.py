"""`teacher:`: the OpenAI-compatible chat endpoint that writes answers for `type: teacher`
extractors, and the disk cache that makes its answers reproducible.

Any server speaking ``POST {base_url}/chat/completions`` works: Ollama (``http://127.0.0.1:11434/v1``),
llama.cpp's server, vLLM, a hosted API. Every answer is stored under a key of everything that
decides it (the model, the messages, the sampling parameters), in the user's cache beside the
tiny models (``~/.cache/recipe-runner/teacher``) unless ``teacher.cache_dir`` points elsewhere;
a re-run, a crash or a fresh runs folder asks nothing twice, and a dataset built once rebuilds
identically with the endpoint gone.

Nothing the endpoint does stops the build: a refused connection, a timeout, a 5xx or 429 (each
retried with exponential backoff), a 4xx, a body that is not a chat completion, an empty,
truncated (``finish_reason: length``) or letterless answer, a spent ``max_requests`` budget, or
an endpoint that failed ``give_up_after`` times in a row (the rest are not sent) becomes a
counted reason in ``rejected.jsonl`` and the report. The API key is read from the environment
variable ``api_key_env`` names, sent only in the ``Authorization`` header, and never written to
a log, the cache, the report or the run lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from runner.recipe.fields import RecipePath, Section

# Failures worth asking again: the endpoint may recover (a restart, a load spike).
RETRIED = frozenset({"refused", "connection error", "timeout", "server error", "rate limited"})
# Failures that say the endpoint is unusable right now (they count towards give_up_after).
UNREACHABLE = RETRIED | frozenset({"client error", "bad response"})


class TeacherSection(Section):
    """`teacher:`: an OpenAI-compatible chat endpoint that writes answers (`type: teacher`
    extractors); its answers are cached on disk."""

    base_url: str = Field(pattern=r"^https?://\S+$")
    """The API root: `http://127.0.0.1:11434/v1` (Ollama), `http://127.0.0.1:8080/v1`
    (llama.cpp's server), a vLLM or hosted endpoint."""
    model: str = Field(min_length=1)
    """The model name the endpoint knows (`qwen2.5-coder:7b-instruct`); recorded in every
    example's `meta.teacher`."""
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the API key (the key itself never goes in a recipe,
    a log or the cache). None: no key is sent."""
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(512, ge=1)
    """The longest answer; an answer cut there is rejected as truncated."""
    seed: int | None = 0
    """Sent to endpoints that honour it (llama.cpp, vLLM, OpenAI)."""
    concurrency: int = Field(4, ge=1, le=64)
    """Requests in flight at once."""
    timeout: float = Field(120, gt=0)
    """Seconds per request."""
    retries: int = Field(3, ge=0)
    """Retries of a refused connection, a timeout, a 5xx or a 429."""
    backoff: float = Field(1.0, ge=0)
    """Seconds before the first retry, doubled for each next one."""
    max_requests: int | None = Field(None, ge=0)
    """Budget: requests sent in one build, retries included; cached answers are free."""
    give_up_after: int = Field(8, ge=1)
    """After this many failed questions in a row, the rest are not sent (rejected as
    `teacher gave up`): an endpoint that is down does not cost every unit its retries."""
    cache_dir: RecipePath | None = Field(None, exclude=True)
    """Where answers are stored (default: `teacher/` in the user cache). Not part of the data
    stage's key: where answers are kept does not change them."""


@dataclass
class Answer:
    """What the teacher said to one question: ``text``, or ``reason`` and ``detail`` of why
    there is no usable answer. ``key`` names the cached answer."""

    key: str
    text: str | None = None
    reason: str | None = None
    detail: str = ""
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.text is not None


def default_cache_dir() -> Path:
    from runner.models.cache import cache_root

    return cache_root() / "teacher"


class AnswerCache:
    """Answers on disk, one JSON file per key (``<dir>/<key[:2]>/<key>.json``), written to a
    temporary name and renamed into place."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)


class TeacherClient:
    """Asks the teacher, from a pool of ``concurrency`` threads, through the cache."""

    def __init__(self, section: TeacherSection, log_file: Path | None = None):
        self.section = section
        self.cache = AnswerCache(
            Path(section.cache_dir) if section.cache_dir else default_cache_dir()
        )
        self.log_file = log_file
        self.url = section.base_url.rstrip("/") + "/chat/completions"
        self.shown_url = re.sub(r"//[^/@]*@", "//", self.url)  # no user:password in logs
        self.pool = ThreadPoolExecutor(section.concurrency, thread_name_prefix="teacher")
        self.lock = threading.Lock()
        self.sent = 0  # HTTP requests, retries included
        self.failed_in_a_row = 0
        self.counts: Counter[str] = Counter()  # asked, cached, answered, and each failure reason
        self._http: Any = None

    # -- the request and its key --------------------------------------------------------------
    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The request body: everything that decides the answer, and so its cache key."""
        s = self.section
        body: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "stream": False,
        }
        if s.top_p is not None:
            body["top_p"] = s.top_p
        if s.seed is not None:
            body["seed"] = s.seed
        return body

    @staticmethod
    def key(body: dict[str, Any]) -> str:
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # -- asking -----------------------------------------------------------------------------
    def submit(self, messages: list[dict[str, str]]) -> Future[Answer]:
        """Ask in the background; a cached answer is returned without a thread."""
        body = self.body(messages)
        key = self.key(body)
        cached = self.cache.get(key)
        if cached is not None:
            future: Future[Answer] = Future()
            with self.lock:
                self.counts["cached"] += 1
            future.set_result(self.judge(key, cached, cached=True))
            return future
        return self.pool.submit(self.ask_safely, body, key)

    def ask_safely(self, body: dict[str, Any], key: str) -> Answer:
        """``ask``, with anything unforeseen turned into a counted failure: the build goes on."""
        try:
            return self.ask(body, key)
        except Exception as exc:  # noqa: BLE001 (a teacher's failure is data, never a crash)
            return self.failed(Answer(key, reason="error", detail=f"{type(exc).__name__}: {exc}"))

    def ask(self, body: dict[str, Any], key: str) -> Answer:
        """Send one question (with retries), cache the completion, judge it."""
        with self.lock:
            self.counts["asked"] += 1
        if self.failed_in_a_row >= self.section.give_up_after:
            return self.failed(
                Answer(
                    key,
                    reason="gave up",
                    detail=f"the endpoint failed {self.failed_in_a_row} questions in a row; "
                    "this one was not sent",
                ),
                counts_as_failure=False,
            )
        headers = {}
        env = self.section.api_key_env
        if env:
            secret = os.environ.get(env)
            if not secret:
                return self.failed(
                    Answer(key, reason="no api key", detail=f"${env} is not set"),
                    counts_as_failure=False,
                )
            headers["Authorization"] = f"Bearer {secret}"
        delay = self.section.backoff
        attempt = 0
        while True:
            if not self.take_budget():
                limit = self.section.max_requests
                return self.failed(
                    Answer(key, reason="budget spent", detail=f"teacher.max_requests {limit}"),
                    counts_as_failure=False,
                )
            attempt += 1
            reason, detail, record = self.post(body, headers, attempt)
            if reason is None:
                assert record is not None
                self.cache.put(key, record)
                with self.lock:
                    self.failed_in_a_row = 0
                return self.judge(key, record, cached=False)
            if reason not in RETRIED or attempt > self.section.retries:
                if attempt > 1:
                    detail += f" (after {attempt} attempts)"
                return self.failed(Answer(key, reason=reason, detail=detail))
            time.sleep(delay)
            delay *= 2

    def take_budget(self) -> bool:
        with self.lock:
            limit = self.section.max_requests
            if limit is not None and self.sent >= limit:
                return False
            self.sent += 1
            return True

    def post(
        self, body: dict[str, Any], headers: dict[str, str], attempt: int
    ) -> tuple[str | None, str, dict[str, Any] | None]:
        """``(failure reason or None, detail, record to cache)`` of one HTTP request."""
        import httpx

        started = time.monotonic()
        try:
            response = self.http().post(self.url, json=body, headers=headers)
        except httpx.TimeoutException:
            self.log(f"timed out after {self.section.timeout:g} s", attempt, started)
            return "timeout", f"no answer within {self.section.timeout:g} s", None
        except httpx.ConnectError as exc:  # refused, DNS: the endpoint is not there
            self.log(f"{type(exc).__name__}", attempt, started)
            return "refused", f"{type(exc).__name__}: {exc}", None
        except httpx.TransportError as exc:  # reset, dropped mid-answer
            self.log(f"{type(exc).__name__}", attempt, started)
            return "connection error", f"{type(exc).__name__}: {exc}", None
        status = response.status_code
        self.log(f"HTTP {status}", attempt, started)
        text = response.text[:300].strip()
        if status == 429:
            return "rate limited", f"HTTP 429: {text}", None
        if status >= 500:
            return "server error", f"HTTP {status}: {text}", None
        if status >= 400:
            return "client error", f"HTTP {status}: {text}", None
        try:
            data = response.json()
            choice = data["choices"][0]
            content = choice["message"]["content"]
            if content is not None and not isinstance(content, str):
                raise TypeError("content is not text")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return "bad response", f"not a chat completion ({exc!r}): {text[:120]!r}", None
        record = {
            "request": body,
            "content": content,
            "finish_reason": choice.get("finish_reason"),
            "served_by": data.get("model"),
            "usage": data.get("usage"),
        }
        return None, "", record

    def judge(self, key: str, record: dict[str, Any], *, cached: bool) -> Answer:
        """The answer of a completion, or why it cannot be used."""
        content = record.get("content")
        answer = Answer(key, cached=cached)
        if not isinstance(content, str) or not content.strip():
            answer.reason, answer.detail = "empty answer", "the completion has no text"
        elif record.get("finish_reason") == "length":
            answer.reason = "truncated answer"
            answer.detail = (
                f"cut at teacher.max_tokens {self.section.max_tokens}: {content[-80:]!r}"
            )
        elif not any(ch.isalnum() for ch in content):
            answer.reason, answer.detail = "garbage answer", f"no letter or digit: {content[:80]!r}"
        else:
            answer.text = content.strip()
        with self.lock:
            self.counts["answered" if answer.ok else answer.reason or "failed"] += 1
        return answer

    def failed(self, answer: Answer, counts_as_failure: bool = True) -> Answer:
        with self.lock:
            self.counts[answer.reason or "failed"] += 1
            if counts_as_failure and answer.reason in UNREACHABLE:
                self.failed_in_a_row += 1
        return answer

    # -- plumbing ---------------------------------------------------------------------------
    def http(self) -> Any:
        import httpx

        with self.lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self.section.timeout,
                    limits=httpx.Limits(max_connections=self.section.concurrency),
                )
            return self._http

    def log(self, outcome: str, attempt: int, started: float) -> None:
        """One line per request in the stage log (never a header: the key is in one)."""
        if self.log_file is None:
            return
        seconds = time.monotonic() - started
        line = (
            f"teacher: POST {self.shown_url} model={self.section.model} attempt {attempt}: "
            f"{outcome} in {seconds:.1f} s\n"
        )
        with self.lock:
            try:
                self.log_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log_file, "a", encoding="utf-8") as handle:
                    handle.write(line)
            except OSError:
                pass  # a log that cannot be written must not cost the answer

    def summary(self) -> dict[str, Any]:
        """What the report shows: the model, requests sent, answers from the cache, and the
        count of every outcome."""
        return {
            "model": self.section.model,
            "base_url": re.sub(r"//[^/@]*@", "//", self.section.base_url),
            "requests_sent": self.sent,
            "max_requests": self.section.max_requests,
            "cache": str(self.cache.folder),
            "outcomes": dict(sorted(self.counts.items())),
        }

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self._http is not None:
            self._http.close()
