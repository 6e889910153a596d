"""Streaming: every source's tasks, listed lazily, turned into ``TaskResult``s by workers.

Results come back in input order whatever the number of processes (``imap``), so the main
process's decisions (dedupe, caps, splits) do not depend on scheduling.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from typing import Any

from runner.data.work import Plan, TaskResult, Worker

# Below this many tasks the work runs in this process: a pool's workers each import the
# filters' libraries again (detect-secrets, datasketch, grammars: seconds) for a few files.
# Not a bench speed-up (the bench corpus has thousands of files): tests/data takes 74 s with
# it and 121 s without, on this 2-core machine.
POOL_MIN_TASKS = 16
# Each chunk of tasks comes back as one message, and each message wakes the pool's worker
# handler thread, which polls until the result thread has read it (CPython's
# ``Pool._handle_workers`` waits on the result pipe too): 0.66 CPU s of the main process for the
# bench corpus's 1106 chunks of 4 tasks, 0.18 s for chunks of 16. A run with fewer tasks than
# the lookahead (``4 * workers * MAX_CHUNK``) gets smaller chunks, four per worker as
# ``Pool.map`` picks them, so that every worker still has a share.
MAX_CHUNK = 16


def tasks(sources: list[Any], listed: list[int]) -> Iterator[tuple[int, str]]:
    """Every source's tasks, listed lazily: walking a large tree takes seconds, and the pool
    reads the first files meanwhile (imap pulls this from its feeder thread)."""
    for index, source in enumerate(sources):
        for task in source.tasks():
            listed[0] += 1
            yield index, task


def results(
    sources: list[Any],
    worker: Worker,
    plan: Plan,
    *,
    workers: int | None,
    progress: Any,
) -> Iterator[TaskResult]:
    """The results of every task, in input order. ``progress(total)`` is a context manager
    yielding ``advance(listed)``."""
    count = workers if workers is not None else min(2, os.cpu_count() or 1)
    listed = [0]
    pending = tasks(sources, listed)
    head = list(itertools.islice(pending, max(POOL_MIN_TASKS, 4 * count * MAX_CHUNK)))
    chunksize = min(MAX_CHUNK, math.ceil(len(head) / (4 * max(count, 1))))
    pending = itertools.chain(head, pending)
    with progress(None) as advance:
        if count <= 1 or len(head) < POOL_MIN_TASKS:
            for task in pending:
                yield worker.process(*task)
                advance(listed[0])
            return
        import multiprocessing

        # fork: the pool inherits the worker built here (tokenizer, template, imports).
        set_worker(worker)
        fork = os.name == "posix"
        if fork:
            # The first task runs here: what it imports and caches (datasketch with scipy,
            # detect-secrets, compiled patterns: 0.6 s) every forked worker then inherits,
            # instead of making it again.
            yield worker.process(*next(pending))
            advance(listed[0])
        context = multiprocessing.get_context("fork" if fork else "spawn")
        initargs = (None if fork else plan,)
        with context.Pool(count, initializer=init_worker, initargs=initargs) as pool:
            for result in pool.imap(process_task, pending, chunksize=chunksize):
                yield result
                advance(listed[0])


# -- process pool plumbing --------------------------------------------------------------------
_WORKER: Worker | None = None


def init_worker(plan: Plan | None) -> None:
    """Pool initializer. Under ``fork`` (``plan`` None) the worker built by the main process is
    inherited, tokenizer loaded; otherwise each process builds its own."""
    global _WORKER
    if plan is not None:
        _WORKER = Worker(plan)


def set_worker(worker: Worker) -> None:
    """Make ``worker`` the one forked pool processes inherit."""
    global _WORKER
    _WORKER = worker


def process_task(task: tuple[int, str]) -> TaskResult:
    assert _WORKER is not None, "init_worker was not called"
    return _WORKER.process(*task)
