"""Streaming: every source's tasks, listed lazily, turned into ``TaskResult``s by workers.

Results come back in input order whatever the number of processes (``imap``), so the main
process's decisions (dedupe, caps, splits) do not depend on scheduling.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from typing import Any

from runner.data.work import Plan, TaskResult, Worker

# Below this many tasks the work runs in this process: starting workers (and loading the
# tokenizer in each) costs more than it saves.
POOL_MIN_TASKS = 16


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
    warm: Any = None,
) -> Iterator[TaskResult]:
    """The results of every task, in input order. ``progress(total)`` is a context manager
    yielding ``advance(listed)``; ``warm`` is called once the work has started."""
    count = workers if workers is not None else min(2, os.cpu_count() or 1)
    listed = [0]
    pending = tasks(sources, listed)
    head = list(itertools.islice(pending, POOL_MIN_TASKS))
    small = len(head) < POOL_MIN_TASKS
    with progress(len(head) if small else None) as advance:
        if count <= 1 or small:
            if warm is not None:
                warm()
            for task in itertools.chain(head, pending):
                yield worker.process(*task)
                advance(listed[0])
            return
        import multiprocessing

        if plan.signature is not None or any(f.type == "near_dedupe" for f in plan.filters):
            from runner.data.minhash import preload

            preload()  # once here rather than once in every worker and again here
        # fork: the pool inherits the worker built here (tokenizer, template, imports).
        set_worker(worker)
        fork = os.name == "posix"
        context = multiprocessing.get_context("fork" if fork else "spawn")
        initargs = (None if fork else plan,)
        with context.Pool(count, initializer=init_worker, initargs=initargs) as pool:
            if warm is not None:
                warm()  # a thread: only once the workers are forked
            for result in pool.imap(process_task, itertools.chain(head, pending), chunksize=4):
                yield result
                advance(listed[0])


def warm_up(template: Any) -> None:
    """Import what the main process needs later (transformers to render the chat template,
    matplotlib for the histogram: seconds each) in a thread, while workers read files."""
    if template is None:
        return
    import threading

    def imports() -> None:
        # A failure here only means the work is done later, where errors are reported.
        with contextlib.suppress(Exception):
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401

            from runner.prompt.render import render_chat_template

            render_chat_template(template.source, [{"role": "user", "content": "x"}])

    threading.Thread(target=imports, name="data-warm-up", daemon=True).start()


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
