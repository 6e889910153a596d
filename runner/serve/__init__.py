"""``recipe serve``: the job API (FastAPI + uvicorn), its SQLite record and Huey queue, the
child process that runs each job, and the page at ``/``.

- ``jobs.py``: the kinds of job, the request, the checks a request passes before anything is
  queued, the SQLite jobs table that is the record of every job.
- ``worker.py``: the child process one job runs in (``python -m runner.serve.worker JOB_DIR``):
  the real pipeline, its events and its log.
- ``queue.py``: the Huey queue (SQLite storage, no server) and the task that starts a worker,
  follows it, records how it ended, and stops it on cancel.
- ``runs.py``: the run folders, as ``/v1/runs`` shows them.
- ``app.py``: the HTTP routes, the token check and the body size limit; ``page.html``: the page.
"""
