"""`type: repo`: the files of a code repository or folder, as raw documents for extractors."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pathspec
from pydantic import Field

from runner.data import files as rules
from runner.data.example import Example, stable_id
from runner.data.extractors import ExtractorList
from runner.data.outcome import Rejection
from runner.data.reading import BadFile, read_text
from runner.data.registries import SOURCES
from runner.data.sources.base import Source, SourceOptions
from runner.languages import canonical, language_of

# A file's first bytes decide whether it is skipped (binary, generated, empty) and its shebang.
HEAD_BYTES = 8192


@SOURCES.register
class RepoSource(Source):
    """Lists files with ``git ls-files`` in a work tree, else by walking the folder with its
    .gitignore files; applies include/exclude globs (gitignore syntax), the ``languages`` list
    and the skip rules (vendored, generated, lock, binary, oversize, links out of the root)."""

    class Options(SourceOptions):
        """A code repository or folder: `git ls-files` in a work tree, .gitignore honoured
        otherwise."""

        type: Literal["repo"]
        include: tuple[str, ...] = ("**/*",)
        """Glob patterns (gitignore style) of files to take."""
        exclude: tuple[str, ...] = ()
        """Glob patterns of files to skip, on top of .gitignore, vendored, generated and lock
        files."""
        languages: tuple[str, ...] | None = None
        """Only files of these languages (go, kotlin, elixir, python, rescript, ...)."""
        language_for: dict[str, str] = {}
        """Language of the files matching a glob pattern (gitignore style), over what the
        file's name, extension or shebang line says, e.g. `{"*.inc": php, "bin/*": bash}`."""
        max_file_bytes: int = Field(1_000_000, ge=1)
        """Skip files larger than this."""
        max_unit_tokens: int = Field(1024, ge=16)
        """Chunk code units longer than this many tokens of the base tokenizer."""
        extract: ExtractorList | None = None
        """Extractors that turn raw files into training examples (default: file_completion)."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.include = pathspec.GitIgnoreSpec.from_lines(list(options.include))
        self.exclude = pathspec.GitIgnoreSpec.from_lines(list(options.exclude))
        languages = options.languages
        self.languages = {canonical(x) for x in languages} if languages else None
        self.language_for = [
            (pathspec.GitIgnoreSpec.from_lines([pattern]), canonical(language))
            for pattern, language in options.language_for.items()
        ]
        self.max_file_bytes = options.max_file_bytes
        self.listing = "walk"

    @functools.cached_property
    def root(self) -> Path:
        """The folder, links resolved: once per source, not for every file read (``realpath``
        checks each part of the path: 0.03 of 4 CPU s for a quarter of the bench corpus)."""
        return Path(os.path.realpath(self.path))

    def shown(self, task: str) -> str:
        return task  # tasks are already paths relative to the root

    def tasks(self) -> Iterator[str]:
        root = self.root
        log_file = self.log_file or Path(os.devnull)
        listed = rules.git_files(root, log_file)
        if not listed:
            # Not a work tree, or a folder the enclosing repository ignores (a pyenv
            # version inside ~/.pyenv, say): git lists nothing, the folder is walked.
            listed = None
        if listed is not None:
            self.listing = "git ls-files"
        for rel in listed if listed is not None else rules.walk_files(root):
            reason = self.skip_reason(root, rel)
            if reason:
                self.skip(reason, rel)
            else:
                yield rel

    def skip_reason(self, root: Path, rel: str) -> str | None:
        if not self.include.match_file(rel):
            return "not included"
        if self.exclude.match_file(rel):
            return "excluded"
        reason = rules.policy_skip(rel)
        if reason:
            return reason
        if self.languages is not None:
            # By name alone when that says; a file it does not (no extension) is read first
            # for its shebang line.
            language = language_of(rel, None, self.language_for)
            if language is not None and language not in self.languages:
                return "other language"
        path = root / rel
        if path.is_symlink() and not rules.inside(root, path):
            return "link outside root"
        if not rules.inside(root, path):
            return "outside root"
        try:
            size = path.stat().st_size
        except OSError:
            return "missing"  # listed by git but deleted from the work tree
        if size > self.max_file_bytes:
            return "over max_file_bytes"
        if not path.is_file():
            return "not a file"
        return None

    def read(self, task: str) -> Iterator[Example | Rejection]:
        path = self.root / task
        try:
            with path.open("rb") as handle:
                head = handle.read(HEAD_BYTES)
        except OSError as exc:
            from runner.data.outcome import bad_input

            yield bad_input(self.stage, "unreadable file", exc.strerror or str(exc), task)
            return
        reason = rules.content_skip(head, whole=len(head) < HEAD_BYTES)
        language = language_of(task, head[:200].decode("utf-8", "replace"), self.language_for)
        if not reason and self.languages is not None and language not in self.languages:
            reason = "other language"
        if reason:
            # Counted in the worker's result; the main process merges it into the report.
            yield Rejection(self.stage, f"skipped: {reason}", file=task, action="skip")
            return
        try:
            text = read_text(path, self.stage, task)
        except BadFile as exc:
            exc.rejection.extra["language"] = language  # for the report's yield per language
            yield exc.rejection
            return
        meta = self.base_metadata(task)
        meta.update({"path": task, "language": language})
        yield Example(id=stable_id(self.name, task), source=self.name, text=text, metadata=meta)
