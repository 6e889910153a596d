"""`recipe serve`: the job API and its page (FastAPI + uvicorn), jobs queued in Huey (SQLite, no
server), each run in a worker process of its own."""

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from runner.errors import UserError

TOKEN_ENV = "RECIPE_SERVE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default: ./runs)")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the jobs table, queue and job logs (default: RUNS/.serve)",
    )
    parser.add_argument(
        "--data-root",
        dest="data_roots",
        action="append",
        metavar="DIR",
        help="a folder jobs' recipes may read (repeatable; default: the working directory); "
        "relative recipe paths and recipes sent as text resolve against the first",
    )
    parser.add_argument(
        "--max-concurrent",
        type=int,
        default=1,
        metavar="N",
        help="jobs running at once (default 1)",
    )
    parser.add_argument(
        "--token",
        help=f"require Authorization: Bearer TOKEN (or set {TOKEN_ENV}); needed off localhost",
    )
    parser.add_argument(
        "--allow-commands",
        action="store_true",
        help="let jobs run their recipes' eval `command` checks (refused otherwise)",
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=None, metavar="N", help="largest request body"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from runner.pipeline import runs_root
    from runner.serve.app import MAX_BODY_BYTES, ServeConfig, create_app

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host) and not token:
        raise UserError(
            f"--host {args.host} lets other machines reach the job API: give --token "
            f"(or set {TOKEN_ENV}) so that only holders of the token can use it"
        )
    if args.max_concurrent < 1:
        raise UserError("--max-concurrent must be at least 1")
    runs = Path(args.runs_dir).resolve() if args.runs_dir else runs_root()
    roots = []
    for raw in args.data_roots or [os.getcwd()]:
        root = Path(raw).expanduser().resolve()
        if not root.is_dir():
            raise UserError(f"--data-root {raw}: not a folder")
        roots.append(root)
    config = ServeConfig(
        state_dir=Path(args.state_dir).resolve() if args.state_dir else runs / ".serve",
        runs_dir=runs,
        data_roots=tuple(roots),
        token=token,
        max_concurrent=args.max_concurrent,
        allow_commands=args.allow_commands,
        max_body_bytes=args.max_body_bytes or MAX_BODY_BYTES,
    )
    print(f"recipe serve: http://{args.host}:{args.port}/ (runs in {runs})", flush=True)
    print(f"recipes may read under: {', '.join(str(r) for r in roots)}", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")
    return 0
