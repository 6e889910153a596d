"""`type: git_history`: each commit of a local clone as an example, its message -> its diff.

``path`` is the clone, or a folder inside one: then only the commits that touched that folder
are read, with its files' changes alone and paths relative to it.

For patch-writing assistants (the agent-logs workflow): the user turn is the commit message
(subject and body, where the issue text often is), the answer the unified diff. git itself
reads the history (``git log``, ``git show``); their output is data and never goes to the log.
Merges, commits by bots, files in vendored or generated paths (the repo source's rules) and
diffs over ``max_diff_bytes`` are skipped, each counted under its reason. The filters apply as
to any source: the secrets filter matters here, since history keeps the credentials people
removed later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pathspec
from pydantic import Field

from runner import proc
from runner.data import files as rules
from runner.data.example import Example, stable_id
from runner.data.outcome import Rejection, bad_input
from runner.data.registries import SOURCES
from runner.data.sources.base import Source, SourceOptions
from runner.errors import StageError
from runner.languages import language_of

BOTS = ("[bot]", "dependabot", "renovate", "github-actions", "pre-commit-ci", "greenkeeper")
_FILE = re.compile(r"^diff --git a/(.*?) b/(.*)$", re.MULTILINE)


@SOURCES.register
class GitHistorySource(Source):
    """Commits of a local clone, newest first: message -> diff."""

    class Options(SourceOptions):
        """The commit history of a local git clone: each commit's message -> its diff."""

        type: Literal["git_history"]
        rev: str = Field("HEAD", pattern=r"^[^\s-][^\s]*$")
        """The history to read: a branch, a tag, or a range such as `v1.0..main`."""
        max_commits: int | None = Field(None, ge=1)
        """Read at most this many commits (the newest)."""
        message: Literal["full", "subject"] = "full"
        """The user turn: the whole message (subject and body, where issue text often is) or
        its subject line only."""
        instruction: str = "{message}"
        """The user turn; `{message}`, `{subject}`, `{body}` and `{files}` are filled in."""
        include: tuple[str, ...] = ("**/*",)
        """Paths (gitignore style) whose changes are kept in the diff."""
        exclude: tuple[str, ...] = ()
        """Paths whose changes are left out, on top of vendored, generated and lock files."""
        max_diff_bytes: int = Field(20_000, ge=1)
        """Skip commits whose (kept) diff is larger than this."""
        context_lines: int = Field(3, ge=0, le=20)
        """Unchanged lines shown around each change."""
        skip_authors: tuple[str, ...] = BOTS
        """Skip commits whose author name or address contains one of these (bots)."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.include = pathspec.GitIgnoreSpec.from_lines(list(options.include))
        self.exclude = pathspec.GitIgnoreSpec.from_lines(list(options.exclude))
        self.listing = "git log"

    @property
    def root(self) -> Path:
        return Path(os.path.realpath(self.path))

    def git(self, *args: str) -> bytes:
        return proc.capture(
            ["git", "-c", "core.quotepath=off", *args],
            stage="data",
            log_file=self.log_file,
            cwd=self.root,
        )

    def shown(self, task: str) -> str:
        return task[:12]

    def task_bytes(self, task: str) -> int:
        return 0  # the diff's size is counted once it is read

    # -- listing (main process) -------------------------------------------------------------
    def tasks(self) -> Iterator[str]:
        # `-- .`: a folder inside a larger repository reads the commits that touched it;
        # --full-history lists the merges among them too, to count them as skipped.
        argv = ["log", "--full-history", "--format=%H%x00%P%x00%an%x00%ae", self.options.rev]
        argv += ["--", "."]
        if self.options.max_commits is not None:
            argv.insert(1, f"--max-count={self.options.max_commits}")
        try:
            listed = self.git(*argv).decode("utf-8", "replace")
        except StageError as exc:
            raise StageError("data", f"{self.stage}: cannot read the history: {exc}") from None
        bots = [b.lower() for b in self.options.skip_authors]
        for line in listed.splitlines():
            sha, parents, author, address = (line.split("\0") + ["", "", ""])[:4]
            if len(parents.split()) > 1:
                self.skip("merge commit", sha[:12])
            elif any(b in author.lower() or b in address.lower() for b in bots):
                self.skip("bot author", sha[:12])
            else:
                yield sha

    # -- reading (worker) -------------------------------------------------------------------
    def read(self, task: str) -> Iterator[Example | Rejection]:
        shown = self.shown(task)
        try:
            raw = self.git(
                "show",
                "--no-color",
                "--no-ext-diff",
                "--find-renames",
                f"--unified={self.options.context_lines}",
                "--format=%B%x00",
                "--relative",  # only the folder's files, with paths relative to it
                task,
                "--",
                ".",
            )
        except StageError as exc:
            yield bad_input(self.stage, "unreadable commit", str(exc), shown)
            return
        head, _, diff = raw.partition(b"\0")
        try:
            message = head.decode("utf-8").strip()
            diff_text = diff.decode("utf-8").lstrip("\n")
        except UnicodeDecodeError:
            yield bad_input(self.stage, "undecodable commit", "message or diff is not UTF-8", shown)
            return
        kept, left_out = self.kept_files(diff_text)
        if not kept:
            reason = "no kept file" if left_out else "empty diff"
            detail = ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()))
            yield Rejection(self.stage, f"skipped: {reason}", detail, file=shown, action="skip")
            return
        patch = "".join(section for _, section in kept)
        if len(patch.encode("utf-8")) > self.options.max_diff_bytes:
            yield Rejection(
                self.stage, "skipped: diff over max_diff_bytes", file=shown, action="skip"
            )
            return
        if not message:
            yield bad_input(self.stage, "empty commit message", "nothing to ask for", shown)
            return
        subject, _, body = message.partition("\n")
        paths = [path for path, _ in kept]
        user = self.options.instruction
        for key, value in (
            ("message", message if self.options.message == "full" else subject),
            ("subject", subject),
            ("body", body.strip()),
            ("files", ", ".join(paths)),
        ):
            user = user.replace("{" + key + "}", value)
        languages = [language_of(p) for p in paths]
        meta = self.base_metadata(shown)
        meta.update(
            {
                "commit": task,
                "files": paths,
                "language": max(set(languages) - {None}, key=languages.count, default=None),
                "diff_files_left_out": sum(left_out.values()),
            }
        )
        ticks = "```"
        while ticks in patch:
            ticks += "`"
        yield Example(
            id=stable_id(self.name, task),
            source=self.name,
            messages=[
                {"role": "user", "content": user.strip()},
                {"role": "assistant", "content": f"{ticks}diff\n{patch.rstrip()}\n{ticks}"},
            ],
            metadata=meta,
        )

    def kept_files(self, diff: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
        """The diff's per-file sections that are kept, and counts of the others by reason."""
        starts = [m.start() for m in _FILE.finditer(diff)] + [len(diff)]
        kept: list[tuple[str, str]] = []
        left_out: dict[str, int] = {}
        for start, end in zip(starts, starts[1:], strict=False):
            section = diff[start:end]
            path = _FILE.match(section).group(2)  # type: ignore[union-attr]
            reason = None
            if not self.include.match_file(path):
                reason = "not included"
            elif self.exclude.match_file(path):
                reason = "excluded"
            else:
                reason = rules.policy_skip(path)
                if reason is None and "\nBinary files " in section:
                    reason = "binary"
                if reason is None and rules.content_skip(_added(section).encode()) == "generated":
                    reason = "generated"
            if reason:
                left_out[reason] = left_out.get(reason, 0) + 1
            else:
                kept.append((path, section))
        return kept, left_out


def _added(section: str) -> str:
    """The first added lines of a file's diff (where generated files say so)."""
    lines = [
        line[1:]
        for line in section.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    return "\n".join(lines[:5])
