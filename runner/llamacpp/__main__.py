"""The child processes of the llama.cpp wrappers: a crash inside the C library fails a stage
with a log instead of killing the runner.

``python -m runner.llamacpp quantize SRC DST TYPE | generate REQUEST RESULT | metadata FILE``,
and ``serve-without-extra-buffers SERVER-ARGS...``: ``python -m llama_cpp.server`` where llama.cpp's
extra CPU buffer types crash (see ``runtime.generate_chat``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from runner.llamacpp.metadata import read_metadata
from runner.llamacpp.quantize import _quantize_here
from runner.llamacpp.runtime import _generate_here


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "quantize":
        return _quantize_here(argv[1], argv[2], argv[3])
    if len(argv) == 3 and argv[0] == "generate":
        return _generate_here(argv[1], argv[2])
    if argv and argv[0] == "serve-without-extra-buffers":
        from runner.llamacpp.runtime import disable_extra_buffers

        disable_extra_buffers()
        from llama_cpp.server.__main__ import main as serve

        sys.argv = ["llama_cpp.server", *argv[1:]]
        serve()
        return 0
    if len(argv) == 2 and argv[0] == "metadata":
        print(json.dumps(read_metadata(Path(argv[1])), indent=2, default=str))
        return 0
    print(
        "usage: python -m runner.llamacpp quantize SRC DST TYPE | generate REQUEST RESULT "
        "| metadata FILE",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
