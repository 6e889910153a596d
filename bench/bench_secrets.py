"""`make bench`: the secrets detector measured like a detector.

- recall on the planted corpus (tests/data/secrets_corpus.py: fake credentials generated from a
  seed, in code, config files and prose): every kind must come out exactly redacted;
- altered clean examples: files of the Python standard library (and of any repository named in
  ``SECRETS_BENCH_REPOS``, folders separated by ``:``, e.g. a public repository fetched into
  /tmp) that redaction changes, listed with what was found, for review: the target is no altered
  example that holds no credential;
- throughput in MB/s, on whole files and on example-sized pieces, and without the literal gates
  (what the pre-filter buys);
- the same numbers for the previous detector (runner/data/filters/secrets.py at PREVIOUS, read
  from git history) when git has it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

from runner.data.filters import secret_scan
from runner.data.filters.secret_scan import find_secrets, redact

PLACEHOLDER = "<REDACTED_SECRET>"
PREVIOUS = "6368c05"  # the two-pass detector this engine replaced
BINARY = {".pyc", ".so", ".gif", ".png", ".jpg", ".ico", ".wav", ".au", ".aiff", ".zip", ".whl"}
PIECE = 1500  # characters: the size of an example's turn
Scan = Callable[[str, str], str]  # (text, filename) -> redacted text


def scan_new(text: str, filename: str) -> str:
    return redact(text, find_secrets(text, filename), PLACEHOLDER)


def previous_detector() -> Scan | None:
    """The previous detector's ``Redactor``, loaded from git history (None without git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS}:runner/data/filters/secrets.py"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    namespace: dict[str, Any] = {"__name__": "previous_secrets"}
    exec(compile(source.replace("@FILTERS.register\n", ""), "previous", "exec"), namespace)
    redactor = namespace["Redactor"](PLACEHOLDER)
    return lambda text, filename: redactor.redact(text, filename or "example.txt", Counter())


def clean_files() -> Iterator[tuple[str, Path, Path]]:
    """(corpus name, root, file) for every text file of the clean corpora."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots = [("stdlib", stdlib)]
    for folder in filter(None, os.environ.get("SECRETS_BENCH_REPOS", "").split(":")):
        roots.append((Path(folder).name, Path(folder)))
    for name, root in roots:
        for path in sorted(root.rglob("*")):
            skipped = {"site-packages", "__pycache__", ".git", "node_modules"} & set(path.parts)
            if path.is_file() and not skipped and path.suffix not in BINARY:
                yield name, root, path


def read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def recall(scan: Scan) -> tuple[int, int, list[str]]:
    from tests.data.secrets_corpus import PLANTED

    exact, gone, missed = 0, 0, []
    for planted in PLANTED:
        out = scan(planted.text, planted.filename)
        exact += out == planted.redacted(PLACEHOLDER)
        lines = [line for line in planted.secret.split("\n") if len(line) >= 8]
        if all(line not in out for line in lines or [planted.secret]):
            gone += 1
        else:
            missed.append(planted.kind)
    return exact, gone, missed


def altered(scan: Scan, corpus: list[tuple[str, str, str]]) -> tuple[list[tuple], float, float]:
    """The examples a scan changes, with the kinds found; MB and seconds scanned."""
    changed = []
    size = 0
    start = time.perf_counter()
    for name, rel, text in corpus:
        size += len(text.encode())
        if scan(text, rel) != text:
            changed.append((name, rel, text))
    return changed, size / 1e6, time.perf_counter() - start


def pieces_rate(scan: Scan, corpus: list[tuple[str, str, str]], limit: int) -> float:
    """MB/s on example-sized pieces of the first ``limit`` bytes of the corpus."""
    pieces = []
    for _, rel, text in corpus:
        pieces += [(rel, text[i : i + PIECE]) for i in range(0, len(text), PIECE)]
        if sum(len(p) for _, p in pieces) > limit:
            break
    start = time.perf_counter()
    for rel, piece in pieces:
        scan(piece, rel)
    return sum(len(p.encode()) for _, p in pieces) / 1e6 / (time.perf_counter() - start)


def ungated() -> ExitStack:
    """Every pattern on every text, keyword patterns on every line: no literal pre-filter."""
    stack = ExitStack()
    stack.enter_context(mock.patch.dict(secret_scan.GATES, dict.fromkeys(secret_scan.GATES, ())))
    for plugin in secret_scan.EXTRA_PLUGINS:
        stack.enter_context(mock.patch.object(plugin, "gates", ()))
    stack.enter_context(mock.patch.object(secret_scan, "KEYWORD_LITERALS", ("",)))
    stack.enter_context(mock.patch.object(secret_scan, "_keyword_lines", every_line))
    secret_scan.token_detectors.cache_clear()
    stack.callback(secret_scan.token_detectors.cache_clear)
    return stack


def every_line(text: str, lower: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]


def kinds(text: str, rel: str) -> str:
    found = Counter(f.kind for f in find_secrets(text, rel))
    return ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))


def main() -> None:
    from tests.data.secrets_corpus import PLANTED

    previous = previous_detector()
    corpus = []
    for name, root, path in clean_files():
        text = read(path)
        if text is not None:
            corpus.append((name, str(path.relative_to(root)), text))

    exact, gone, missed = recall(scan_new)
    print(
        f"   planted corpus: {len(PLANTED)} kinds; recall {gone}/{len(PLANTED)} "
        f"({100 * gone / len(PLANTED):.1f} %), exact redaction {exact}/{len(PLANTED)}"
        + (f"; missed: {', '.join(missed)}" if missed else ""),
        flush=True,
    )
    if previous:
        exact, gone, missed = recall(previous)
        print(
            f"   previous detector ({PREVIOUS}): recall {gone}/{len(PLANTED)} "
            f"({100 * gone / len(PLANTED):.1f} %), exact {exact}; missed: {', '.join(missed)}",
            flush=True,
        )

    for name in dict.fromkeys(name for name, _, _ in corpus):
        part = [row for row in corpus if row[0] == name]
        changed, megabytes, seconds = altered(scan_new, part)
        found: Counter[str] = Counter()
        for _, rel, text in changed:
            found.update(f.kind for f in find_secrets(text, rel))
        summary = ", ".join(f"{n} {kind}" for kind, n in found.most_common())
        print(
            f"   clean corpus {name}: {len(part)} files, {megabytes:.1f} MB, "
            f"{megabytes / seconds:.1f} MB/s; altered {len(changed)} files ({summary or 'none'})",
            flush=True,
        )
        for _, rel, text in changed:
            print(f"      {rel}: {kinds(text, rel)}")
    sample = 4_000_000  # characters
    rate = pieces_rate(scan_new, corpus, sample)
    print(
        f"   example-sized pieces ({PIECE} characters, first {sample / 1e6:.0f} MB): {rate:.1f} MB/s"
    )
    with ungated():
        rate = pieces_rate(scan_new, corpus, sample // 8)
    print(f"   without the literal gates: {rate:.1f} MB/s (first 0.5 MB of the pieces)", flush=True)
    if previous:
        changed, megabytes, seconds = altered(previous, corpus)  # all corpora together
        print(
            f"   previous detector ({PREVIOUS}), all clean corpora: altered {len(changed)} files; "
            f"{megabytes / seconds:.1f} MB/s on whole files, "
            f"{pieces_rate(previous, corpus, sample):.1f} MB/s on pieces",
            flush=True,
        )


if __name__ == "__main__":
    main()
