"""`type: docs`: Markdown split by heading into sections; HTML text through a real parser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pathspec
from pydantic import Field

from runner.data.example import Example, stable_id
from runner.data.extractors import ExtractorList
from runner.data.outcome import Rejection
from runner.data.reading import BadFile, display_path, read_text
from runner.data.registries import SOURCES
from runner.data.sources.base import Source, SourceOptions


@dataclass
class Section:
    title: str
    level: int
    trail: list[str]  # titles of the enclosing headings, outermost first
    body: str
    line: int


def markdown_sections(text: str, default_title: str) -> list[Section]:
    """Sections of a Markdown document, one per heading (markdown-it finds real headings, not
    ``#`` lines inside code fences)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    lines = text.splitlines()
    heads = []  # (start line, end line, level, title)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            title = tokens[index + 1].content.strip()
            heads.append((token.map[0], token.map[1], int(token.tag[1]), title))
    sections = []
    first = heads[0][0] if heads else len(lines)
    preamble = "\n".join(lines[:first]).strip()
    if preamble:
        sections.append(Section(default_title, 0, [], preamble, 1))
    stack: list[tuple[int, str]] = []
    for number, (start, end, level, title) in enumerate(heads):
        stop = heads[number + 1][0] if number + 1 < len(heads) else len(lines)
        while stack and stack[-1][0] >= level:
            stack.pop()
        sections.append(
            Section(
                title, level, [t for _, t in stack], "\n".join(lines[end:stop]).strip(), start + 1
            )
        )
        stack.append((level, title))
    return sections


def html_sections(text: str, default_title: str) -> list[Section]:
    """Sections of an HTML page: the text between headings, extracted by BeautifulSoup."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript"]):
        tag.decompose()
    if soup.title and soup.title.string:
        default_title = soup.title.string.strip()
    if soup.head:
        soup.head.decompose()
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        level = int(heading.name[1])
        heading.replace_with(f"\n\0{level}\0{heading.get_text(' ', strip=True)}\n")
    sections: list[Section] = []
    title, level, body = default_title, 0, []
    stack: list[tuple[int, str]] = []
    trail: list[str] = []

    def flush() -> None:
        content = re.sub(r"\n{3,}", "\n\n", "\n".join(body)).strip()
        if content or level:
            sections.append(Section(title, level, list(trail), content, 0))

    for line in soup.get_text().splitlines():
        if line.startswith("\0"):
            flush()
            _, level_text, title = line.split("\0", 2)
            level, body = int(level_text), []
            while stack and stack[-1][0] >= level:
                stack.pop()
            trail = [t for _, t in stack]
            stack.append((level, title))
        else:
            body.append(line.rstrip())
    flush()
    return sections


_RST_UNDERLINE = re.compile(r"^([=\-~^*+#\"'`])\1{2,}\s*$")


def rst_sections(text: str, default_title: str) -> list[Section]:
    """Sections of reStructuredText by its underlined titles (levels in order of appearance)."""
    lines = text.splitlines()
    marks: list[str] = []
    heads = []
    for index in range(1, len(lines)):
        match = _RST_UNDERLINE.match(lines[index])
        title = lines[index - 1].strip()
        if match and title and len(lines[index].rstrip()) >= len(title):
            if match.group(1) not in marks:
                marks.append(match.group(1))
            heads.append((index - 1, marks.index(match.group(1)) + 1, title))
    sections = []
    stack: list[tuple[int, str]] = []
    preamble = "\n".join(lines[: heads[0][0] if heads else len(lines)]).strip()
    if preamble:
        sections.append(Section(default_title, 0, [], preamble, 1))
    for number, (start, level, title) in enumerate(heads):
        stop = heads[number + 1][0] if number + 1 < len(heads) else len(lines)
        while stack and stack[-1][0] >= level:
            stack.pop()
        sections.append(
            Section(
                title,
                level,
                [t for _, t in stack],
                "\n".join(lines[start + 2 : stop]).strip(),
                start + 1,
            )
        )
        stack.append((level, title))
    return sections


SPLITTERS = {
    ".md": markdown_sections,
    ".markdown": markdown_sections,
    ".html": html_sections,
    ".htm": html_sections,
    ".rst": rst_sections,
}


@SOURCES.register
class DocsSource(Source):
    """Each section (heading + body) becomes a raw document with ``title`` and ``heading_path``
    metadata; sections shorter than ``min_section_chars`` are rejected with a reason."""

    class Options(SourceOptions):
        """Documentation split by heading into sections."""

        type: Literal["docs"]
        include: tuple[str, ...] = (
            "**/*.md",
            "**/*.markdown",
            "**/*.html",
            "**/*.htm",
            "**/*.rst",
            "**/*.txt",
        )
        """Glob patterns (gitignore style) of files to take."""
        exclude: tuple[str, ...] = ()
        """Glob patterns of files to skip."""
        min_section_chars: int = Field(80, ge=0)
        """Sections shorter than this are rejected with a reason."""
        extract: ExtractorList | None = None
        """Extractors that turn sections into training examples (default: docs_qa)."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.include = pathspec.GitIgnoreSpec.from_lines(list(options.include))
        self.exclude = pathspec.GitIgnoreSpec.from_lines(list(options.exclude))
        self.min_chars = options.min_section_chars

    def tasks(self) -> Iterator[str]:
        if self.path.is_file():
            yield str(self.path)
            return
        for file in sorted(self.path.rglob("*")):
            rel = file.relative_to(self.path).as_posix()
            if not file.is_file() or any(p.startswith(".") for p in rel.split("/")[:-1]):
                continue
            if not self.include.match_file(rel):
                continue
            if self.exclude.match_file(rel):
                self.skip("excluded", rel)
                continue
            yield str(file)

    def read(self, task: str) -> Iterator[Example | Rejection]:
        path = Path(task)
        shown = display_path(path, self.root)
        try:
            text = read_text(path, self.stage, shown)
        except BadFile as exc:
            yield exc.rejection
            return
        default_title = path.stem.replace("-", " ").replace("_", " ")
        splitter = SPLITTERS.get(path.suffix.lower())
        sections = (
            splitter(text, default_title)
            if splitter
            else [Section(default_title, 0, [], text.strip(), 1)]
        )
        for number, section in enumerate(sections):
            meta = self.base_metadata(shown, section.line or None)
            meta.update(
                {
                    "title": section.title,
                    "heading_path": " > ".join([*section.trail, section.title]),
                    "level": section.level,
                    "path": shown,
                    "language": "markdown" if splitter is markdown_sections else None,
                }
            )
            example = Example(
                id=stable_id(self.name, shown, number, section.title),
                source=self.name,
                text=section.body,
                metadata=meta,
            )
            if len(section.body) < self.min_chars:
                yield Rejection(
                    self.stage,
                    "section shorter than min_section_chars",
                    f"{len(section.body)} < {self.min_chars} chars",
                    file=shown,
                    line=section.line or None,
                    example=example,
                )
                continue
            yield example
