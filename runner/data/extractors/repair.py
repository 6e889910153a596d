"""`repair_code`: break a unit the way people do, keep the breaks a checker rejects, and teach the
fix: "Fix this error: <message> <broken code>" -> the original code.

No model is needed. Each unit (a function, method, or a type without members) that parses on its
own is broken in small ways: a dropped bracket, semicolon or colon (syntax tokens of its tree,
never characters inside strings or comments), a renamed use of an identifier, a deprecated call
swapped back in (``@floatFromInt`` -> ``@intToFloat`` for Zig), and the recipe's own
``mutations:`` (regular-expression pairs). A break is kept only when the grammar rejects it
(tree-sitter: an ERROR or MISSING node), or, with ``command:`` (``zig ast-check {file}``, allowed
by ``allow_command: true``), when that command rejects it while accepting the original; its
message is the error the user would see. Breaks nothing rejects (a renamed identifier parses
fine) are counted and reported, never written as examples: a "fix" for correct code would teach
the model to change code that needs no change.
"""

from __future__ import annotations

import random
import re
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from runner.data.example import Example, stable_id
from runner.data.extractors.base import Extractor, ExtractorOptions, fenced
from runner.data.outcome import Rejection
from runner.data.registries import EXTRACTORS
from runner.data.units import Unit, parse_units, walk_units
from runner.errors import UserError
from runner.grammars import has_parser, parse_error, parser_for
from runner.recipe.fields import Pattern, Section

BreakKind = Literal[
    "drop_bracket", "drop_semicolon", "drop_colon", "rename_identifier", "deprecated_call"
]
BREAKS: tuple[str, ...] = (
    "drop_bracket",
    "drop_semicolon",
    "drop_colon",
    "rename_identifier",
    "deprecated_call",
)
BRACKETS = frozenset("()[]{}")
# Renamed builtins and functions, per language: the current name -> the deprecated one people
# still write (Zig 0.11 renamed its casts: ziglang/zig#15569; Python's unittest aliases).
DEPRECATED_CALLS: dict[str, tuple[tuple[str, str], ...]] = {
    "zig": (
        (r"@floatFromInt\(", "@intToFloat("),
        (r"@intFromFloat\(", "@floatToInt("),
        (r"@intFromBool\(", "@boolToInt("),
        (r"@intFromEnum\(", "@enumToInt("),
        (r"@enumFromInt\(", "@intToEnum("),
        (r"@intFromPtr\(", "@ptrToInt("),
        (r"@ptrFromInt\(", "@intToPtr("),
        (r"@intFromError\(", "@errorToInt("),
        (r"@errorFromInt\(", "@intToError("),
    ),
    "python": (
        (r"\.assertEqual\(", ".assertEquals("),
        (r"\.assertRaisesRegex\(", ".assertRaisesRegexp("),
        (r"\bdatetime\.now\(timezone\.utc\)", "datetime.utcnow()"),
    ),
    "javascript": ((r"\.substring\(", ".substr("),),
    "typescript": ((r"\.substring\(", ".substr("),),
}


class Mutation(Section):
    """A way people break code, as a regular expression and its replacement."""

    find: Pattern
    """The pattern; one match per break is replaced."""
    replace: str
    """The replacement (`\\1` refers to a group)."""
    name: str | None = None
    """How reports and `meta.mutation` name it (default: the pattern)."""
    language: str | None = None
    """Only for files in this language (default: every language)."""


@EXTRACTORS.register
class RepairCode(Extractor):
    """User: "Fix this error: <message>" and the broken unit. Assistant: the original unit."""

    class Options(ExtractorOptions):
        """Repair pairs: units broken on purpose, kept only when the grammar (or an allowed
        command) rejects the break; the answer is the original code."""

        type: Literal["repair_code"]
        instruction: str = "Fix this error: {message}"
        """The user turn before the broken code; `{message}` is the checker's error, and
        `{language}`, `{name}`, `{path}` are filled in."""
        breaks: tuple[BreakKind, ...] = BREAKS
        """Built-in ways to break a unit."""
        mutations: tuple[Mutation, ...] = ()
        """More ways, as regex pairs (e.g. `@floatFromInt\\(` -> `@intToFloat(` for Zig)."""
        per_unit: int = Field(2, ge=1)
        """Breaks kept per unit, at most."""
        tries: int = Field(12, ge=1)
        """Breaks tried per unit before giving up."""
        command: tuple[str, ...] = ()
        """A checker to run on each break when the grammar accepts it (argv; `{file}` is the
        broken code's path), e.g. `[zig, ast-check, "{file}"]`; needs `allow_command: true`."""
        allow_command: bool = False
        """Allow `command` to run (set it after reading the command)."""
        file: str = "snippet.txt"
        """The file name the command sees (its extension can matter: `snippet.zig`)."""
        timeout: float = Field(20, gt=0)
        """Seconds before the command is stopped (the break then counts as not rejected)."""
        seed: int = Field(0, ge=0)

        @field_validator("file")
        @classmethod
        def _plain_name(cls, name: str) -> str:
            if Path(name).name != name or name in ("", ".", "..") or "\x00" in name:
                raise ValueError(f"file {name!r} must be a plain file name")
            return name

    def __init__(self, options: Any, source_options: Any, tokens: Any):
        super().__init__(options, source_options, tokens)
        if options.command and not options.allow_command:
            raise UserError(
                "repair_code `command:` runs a program from the recipe on generated code, and "
                "allow_command is false; read the command and set `allow_command: true` on that "
                "extract entry to allow it"
            )
        self.command = list(options.command)
        self.log_file: Path | None = None
        self.isolation: list[str] = []

    def attach(self, plan: Any, shared: dict[str, Any]) -> None:
        self.log_file = Path(plan.log_file) if getattr(plan, "log_file", None) else None
        if self.command:
            from runner.eval.checks.command import network_isolation

            self.isolation = network_isolation()[0]

    def extract(self, doc: Example) -> Iterator[Example | Rejection]:
        language = doc.metadata.get("language")
        if not has_parser(language):
            yield self.reject(
                doc, "no grammar", f"{language or 'unknown language'}: no tree-sitter grammar"
            )
            return
        units = [u for u in walk_units(parse_units(doc.text, language)[0]) if not u.children]
        if not units:
            yield self.reject(
                doc, "no unit", f"no function, method or type in this {language} file"
            )
            return
        lines = doc.text.split("\n")
        for unit in units:
            yield from self.repairs(doc, unit, lines)

    def repairs(self, doc: Example, unit: Unit, lines: list[str]) -> Iterator[Example | Rejection]:
        language = unit.language
        code = standalone(unit, lines)
        if parse_error(code, language):
            yield self.reject(
                doc,
                "unit does not parse alone",
                f"{unit.kind} '{unit.name}': {parse_error(code, language)}",
                unit.start_line,
            )
            return
        if not self.fits(code):
            yield self.reject(
                doc,
                "unit over max_unit_tokens",
                f"{unit.kind} '{unit.name}' does not fit {self.max_tokens} tokens",
                unit.start_line,
            )
            return
        if self.command and self.run_command(code, language) is not None:
            yield self.reject(
                doc,
                "original rejected by command",
                f"{unit.kind} '{unit.name}': `{self.command[0]}` rejects the unit as written",
                unit.start_line,
            )
            return
        rng = random.Random(
            stable_id(doc.id, self.type, unit.name, unit.start_line, self.options.seed)
        )
        candidates = self.candidates(code, language, rng)
        kept = 0
        tried: list[str] = []
        for kind, broken in candidates[: self.options.tries]:
            tried.append(kind)
            message = parse_error(broken, language)
            checker = "grammar"
            if message is None and self.command:
                message, checker = self.run_command(broken, language), "command"
            if message is None:
                continue
            user = self.fill(
                message=message,
                language=language,
                name=unit.name,
                path=doc.metadata.get("path", ""),
            )
            yield self.make(
                doc,
                f"{user}\n\n{fenced(broken, language)}",
                fenced(code, language),
                unit.name,
                unit.start_line,
                kind,
                broken,
                unit=unit.name,
                kind=unit.kind,
                line=unit.start_line,
                mutation=kind,
                rejected_by=checker,
                error=message,
                parses=True,  # the answer is the original unit, which parses
            )
            kept += 1
            if kept >= self.options.per_unit:
                return
        if kept == 0:
            what = ", ".join(sorted(set(tried))) or "no break applies"
            yield self.reject(
                doc,
                "no break rejected",
                f"{unit.kind} '{unit.name}': {len(tried)} tried ({what}); the grammar"
                + (" and the command" if self.command else "")
                + " accepted every one",
                unit.start_line,
            )

    def candidates(self, code: str, language: str, rng: random.Random) -> list[tuple[str, str]]:
        """Broken versions of ``code``, one per way and place, in a seeded order that
        interleaves the ways (so a few tries cover several kinds)."""
        by_kind: dict[str, list[str]] = {}
        tokens = _leaves(code, language)
        for kind in self.options.breaks:
            if kind == "drop_bracket":
                found = [_without(code, t) for t in tokens if t[2] in BRACKETS]
            elif kind == "drop_semicolon":
                found = [_without(code, t) for t in tokens if t[2] == ";"]
            elif kind == "drop_colon":
                found = [_without(code, t) for t in tokens if t[2] == ":"]
            elif kind == "rename_identifier":
                found = _renames(code, tokens, rng)
            else:
                found = _substitutions(code, DEPRECATED_CALLS.get(language, ()))
            by_kind[kind] = found
        for mutation in self.options.mutations:
            if mutation.language in (None, language):
                pairs = ((mutation.find, mutation.replace),)
                name = mutation.name or mutation.find
                by_kind.setdefault(name, []).extend(_substitutions(code, pairs))
        seen = {code}
        lists = []
        for kind, found in by_kind.items():
            rng.shuffle(found)
            lists.append([(kind, b) for b in found])
        rng.shuffle(lists)
        ordered = []
        while any(lists):
            for items in lists:
                if items:
                    kind, broken = items.pop()
                    if broken not in seen:
                        seen.add(broken)
                        ordered.append((kind, broken))
        return ordered

    def run_command(self, code: str, language: str) -> str | None:
        """The command's complaint about ``code`` (its last line of output), or None when it
        accepts it."""
        from runner import proc

        with tempfile.TemporaryDirectory(prefix="recipe-repair-") as tmp:
            folder = Path(tmp)
            path = folder / self.options.file
            path.write_text(code, encoding="utf-8")
            argv = [a.replace("{file}", str(path)) for a in self.command]
            timeout = ["timeout", "--kill-after=2", f"{self.options.timeout:g}"]
            output: list[str] = []
            try:
                proc.run(
                    [*timeout, *self.isolation, *argv],
                    stage="data",
                    log_file=self.log_file or folder / "command.log",
                    cwd=folder,
                    on_line=output.append,
                    timeout=self.options.timeout + 10,
                )
            except proc.CommandFailed as exc:
                if exc.timed_out or exc.status in (124, 137):
                    return None  # no verdict: the break is not kept
                lines = [line.strip() for line in output if line.strip()]
                message = next((line for line in lines if "error" in line.lower()), None)
                message = message or (lines[-1] if lines else f"exit status {exc.status}")
                return message.replace(str(folder) + "/", "")
            except UserError:
                raise
        return None


def standalone(unit: Unit, lines: list[str]) -> str:
    """The unit as a file of its own: the documentation above it and its code, with the
    indentation of its first line removed from every line."""
    code = unit.documented_code
    first_line = lines[unit.start_line - 1] if 0 < unit.start_line <= len(lines) else ""
    indent = first_line[: len(first_line) - len(first_line.lstrip())]
    if indent and not code.startswith(indent):
        code = indent + code
    return textwrap.dedent(code).rstrip() + "\n"


def _leaves(code: str, language: str) -> list[tuple[int, int, str, bool]]:
    """``(start, end, text, named)`` of every token of ``code``'s tree (character offsets);
    strings and comments are single leaves here, so their insides are never broken."""
    data = code.encode("utf-8")
    tree = parser_for(language).parse(data)
    leaves = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        words = node.type.lower()
        if node.child_count == 0 or "string" in words or "comment" in words:
            start = len(data[: node.start_byte].decode("utf-8", "replace"))
            text = data[node.start_byte : node.end_byte].decode("utf-8", "replace")
            leaves.append((start, start + len(text), text, node.is_named and node.type))
            continue
        stack.extend(reversed(node.children))
    return leaves


def _without(code: str, token: tuple[int, int, str, Any]) -> str:
    return code[: token[0]] + code[token[1] :]


def _renames(code: str, leaves: list[tuple[int, int, str, Any]], rng: random.Random) -> list[str]:
    """Each later use of a name used at least twice, misspelt (a letter dropped or two
    swapped), so it no longer names what was declared."""
    uses: dict[str, list[tuple[int, int, str, Any]]] = {}
    for leaf in leaves:
        kind = leaf[3]
        if isinstance(kind, str) and "identifier" in kind and len(leaf[2]) >= 3:
            uses.setdefault(leaf[2], []).append(leaf)
    found = []
    for name, places in uses.items():
        for start, end, _, _ in places[1:]:
            at = rng.randrange(1, len(name) - 1)
            typo = name[:at] + name[at + 1 :] if rng.random() < 0.5 else _swap(name, at)
            if typo != name:
                found.append(code[:start] + typo + code[end:])
    return found


def _swap(name: str, at: int) -> str:
    return name[: at - 1] + name[at] + name[at - 1] + name[at + 1 :]


def _substitutions(code: str, pairs: Any) -> list[str]:
    found = []
    for pattern, replacement in pairs:
        for match in re.finditer(pattern, code, re.MULTILINE):
            found.append(code[: match.start()] + match.expand(replacement) + code[match.end() :])
    return found
