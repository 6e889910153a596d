"""llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``), as users run a GGUF.

The server renders the GGUF's own ``tokenizer.chat_template`` with the GGUF's BOS/EOS texts
(llama-cpp-python's ``Jinja2ChatFormatter``) and tokenizes the result, so asking it
``/v1/chat/completions`` proves what a user of llama.cpp's server, or of any OpenAI client
pointed at it, gets. It is bound to 127.0.0.1 on a free port, started and stopped here.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runner import proc
from runner.errors import StageError


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it, outside Ray's worker range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_argv(gguf: Path, port: int, n_ctx: int, lora_path: Path | None = None) -> list[str]:
    """``python -m llama_cpp.server ...``, through the runner's wrapper where llama.cpp's
    extra CPU buffer types crashed earlier in this run (``runtime.generate_chat``)."""
    from runner.llamacpp.runtime import extra_buffers_crash_here

    module = ["-m", "llama_cpp.server"]
    if extra_buffers_crash_here():
        module = ["-m", "runner.llamacpp", "serve-without-extra-buffers"]
    argv = proc.python_argv(
        *module,
        "--model", str(gguf),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--seed", "0",
    )  # fmt: skip
    if lora_path is not None:
        argv += ["--lora_path", str(lora_path)]
    return argv


@contextmanager
def serve(
    gguf: Path,
    *,
    n_ctx: int,
    lora_path: Path | None = None,
    stage: str = "smoke",
    log_file: Path,
    ready_timeout: float = 180.0,
) -> Iterator[str]:
    """Serve ``gguf`` (with a LoRA adapter) while the block runs; yields the base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = server_argv(gguf, port, n_ctx, lora_path)
    with proc.background(argv, stage=stage, log_file=log_file) as server:
        deadline = time.monotonic() + ready_timeout
        while True:
            if server.poll() is not None:
                tail = log_file.read_text(errors="replace")[-1500:] if log_file.is_file() else ""
                raise StageError(
                    stage,
                    f"llama.cpp's server exited with status {server.returncode} before serving "
                    f"{gguf.name}; see {log_file}\n{tail}",
                )
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise StageError(
                    stage,
                    f"llama.cpp's server did not answer within {ready_timeout:g} s; see {log_file}",
                )
            time.sleep(0.1)  # it answers 1-2 s after the start: a long wait is time lost
        yield url


def chat_completion(url: str, request: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """POST ``/v1/chat/completions``; the parsed answer."""
    body = json.dumps(request).encode("utf-8")
    req = urllib.request.Request(
        f"{url}/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise StageError("smoke", f"llama.cpp's server answered {exc.code}: {detail}") from None
