"""Writing Go template text a person can read: literal text laid out one action per line
where that cannot change the output, glue choices as if/else on the turn's position facts,
and today's date cut from Ollama's ``currentDate``. Used by ``runner.prompt.gotemplate``;
every text written here is verified by rendering it before it is used."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from runner.prompt.structure import DATE_CLOSE, DATE_OPEN, SYSTEM, Glue, snap_prefix, snap_suffix


class Writer:
    """Go template text from literal pieces and actions, laid out one action per line where
    that cannot change the output: a layout newline is eaten by ``{{-`` only when the literal
    before it does not end with white space of its own."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._line_action = False

    def text(self, value: str) -> None:
        if value and self.parts and self._line_action and value[0] not in " \t\r\n":
            # Text starting a line after an action line: the action trims the layout newline.
            self.parts[-1] = self.parts[-1][:-3] + " -}}\n"
        for piece in _literal_pieces(value):
            if piece.startswith("{{"):
                self._action(piece[3:-3], line=False)
            else:
                self.parts.append(piece)
                self._line_action = False

    def act(self, code: str, line: bool = True) -> None:
        self._action(code, line)

    def _action(self, code: str, line: bool) -> None:
        prev = self.parts[-1] if self.parts else ""
        if not self.parts:
            self.parts.append(f"{{{{- {code} }}}}")
        elif line and (prev.endswith("}}") or (prev and prev[-1] not in " \t\r\n")):
            self.parts.append(f"\n{{{{- {code} }}}}")
        else:
            self.parts.append(f"{{{{ {code} }}}}")
        self._line_action = line

    def glue(self, value: str, dates: Mapping[str, str]) -> None:
        """Literal text with the system and date markers turned into actions."""
        for piece in re.split(f"({SYSTEM}|{DATE_OPEN}[^{DATE_CLOSE}]*{DATE_CLOSE})", value):
            if piece == SYSTEM:
                self._action("$.System", line=False)
            elif piece.startswith(DATE_OPEN):
                for code in dates[piece[1:-1]]:
                    if code.startswith("{{"):
                        self._action(code[3:-3], line=False)
                    else:
                        self.text(code)
            elif piece:
                self.text(piece)

    def result(self) -> str:
        return "".join(self.parts)


def _literal_pieces(value: str) -> list[str]:
    """``value`` as raw text, except what Go or a Modelfile would alter: ``{{`` and the
    characters the Modelfile parser drops (non-printable ones) become string constants."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append("".join(run))
            run.clear()

    i = 0
    while i < len(value):
        if value.startswith("{{", i):
            flush()
            out.append('{{ "{{" }}')
            i += 2
            continue
        ch = value[i]
        if ch == "\n" or ch.isprintable():
            run.append(ch)
        else:
            flush()
            out.append("{{ " + go_string(ch) + " }}")
        i += 1
    flush()
    return out


def date_expression(fmt: str) -> list[str] | None:
    """Go actions and literals writing today's date in the strftime format ``fmt``, from
    Ollama's ``currentDate`` (YYYY-MM-DD); None for a directive that cannot be built."""
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    full = [
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December",
    ]  # fmt: skip

    def month_names(names: list[str]) -> str:
        chain = "".join(
            f'{"if" if i == 0 else "else if"} eq (slice currentDate 5 7) "{i + 1:02d}" }}}}{n}{{{{ '
            for i, n in enumerate(names)
        )
        return "{{ " + chain + "end }}"

    if fmt == "%Y-%m-%d":
        return ["{{ currentDate }}"]
    pieces = {
        "%Y": "{{ slice currentDate 0 4 }}",
        "%y": "{{ slice currentDate 2 4 }}",
        "%m": "{{ slice currentDate 5 7 }}",
        "%d": "{{ slice currentDate 8 10 }}",
        "%-d": '{{ if eq (slice currentDate 8 9) "0" }}{{ slice currentDate 9 10 }}'
        "{{ else }}{{ slice currentDate 8 10 }}{{ end }}",
        "%b": month_names(months),
        "%B": month_names(full),
    }
    out = []
    for token in re.split(r"(%-?[a-zA-Z%])", fmt):
        if not token:
            continue
        if token.startswith("%"):
            if token == "%%":
                out.append("%")
            elif token in pieces:
                out.extend(_split_actions(pieces[token]))
            else:
                return None
        else:
            out.append(token)
    return out


def _split_actions(code: str) -> list[str]:
    return [p for p in re.split(r"(\{\{ .*? \}\})", code) if p]


_ORDER = ("first", "single", "last", "last_user", "sys")
_GO_FACT = {
    "sys": "$.System",
    "first": "$first",
    "single": "$first",
    "last": "$last",
    "last_user": "eq $i $lastUser",
}


def choice(w: Writer, glue: Glue, dates: Mapping[str, list[str]]) -> None:
    """``glue`` as literal text, or as if/else chains over its facts."""
    _emit_table(w, glue.facts, list(glue.table), dates)


def _emit_table(w: Writer, facts, table: list[tuple[tuple[bool, ...], str]], dates) -> None:
    """Text shared by every branch is written outside the conditions: a shared head and tail,
    and a longest shared middle that splits the rest into two smaller choices (Llama 2's
    ``{{ if not $first }}<s>{{ end }}[INST] {{ if and $first $.System }}<<SYS>>...``).
    What still differs becomes an if/else on one fact at a time."""
    values = list(dict.fromkeys(text for _, text in table))
    if len(values) == 1:
        w.glue(values[0], dates)
        return
    head, tail = _shared_ends(values)
    table = [(k, t[len(head) : len(t) - len(tail)]) for k, t in table]
    w.glue(head, dates)
    anchor = _common_substring([t for _, t in table])
    by_text = {
        text: {k for k, t in table if t == text} for text in dict.fromkeys(t for _, t in table)
    }
    if anchor:
        _emit_table(w, facts, [(k, t.split(anchor, 1)[0]) for k, t in table], dates)
        w.glue(anchor, dates)
        _emit_table(w, facts, [(k, t.split(anchor, 1)[1]) for k, t in table], dates)
    elif (
        set(by_text) == {"", SYSTEM}
        and "sys" in facts
        and all(k[facts.index("sys")] for k in by_text[SYSTEM])
    ):
        w.glue(SYSTEM, dates)  # .System is empty when there is no system prompt
    elif len(by_text) == 2:
        _if_chain(w, facts, table, dates)
    else:
        fact = min(
            range(len(facts)),
            key=lambda i: (
                sum(len({t for k, t in table if k[i] == v}) for v in (True, False)),
                _ORDER.index(facts[i]),
            ),
        )
        sides = {v: [(k, t) for k, t in table if k[fact] == v] for v in (True, False)}
        if all(t == "" for _, t in sides[True]):
            sides = {True: sides[False], False: sides[True]}
            w.act(f"if {_go_and(facts, [(fact, False)])}", line=False)
        else:
            w.act(f"if {_go_and(facts, [(fact, True)])}", line=False)
        _emit_table(w, facts, sides[True], dates)
        if any(t for _, t in sides[False]):
            w.act("else", line=False)
            _emit_table(w, facts, sides[False], dates)
        w.act("end", line=False)
    w.glue(tail, dates)


def _shared_ends(values: list[str]) -> tuple[str, str]:
    """The text every value starts and ends with, taken suffix first or prefix first,
    whichever leaves the shared head on a line end (or empty), then the longer."""
    options = []
    for suffix_first in (True, False):
        if suffix_first:
            tail = snap_suffix(common_suffix(*values))
            head = snap_prefix(common_prefix(*(v[: len(v) - len(tail)] for v in values)))
        else:
            head = snap_prefix(common_prefix(*values))
            tail = snap_suffix(common_suffix(*(v[len(head) :] for v in values)))
        head, tail = _marker_safe(head, tail)
        options.append(((head == "" or head.endswith("\n"), len(head) + len(tail)), head, tail))
    _, head, tail = max(options, key=lambda o: o[0])
    return head, tail


def _if_chain(w: Writer, facts, table, dates) -> None:
    """Two texts: an if (with an else unless one of them is empty)."""
    keys_of: dict[str, list[tuple[bool, ...]]] = {}
    for key, text in table:
        keys_of.setdefault(text, []).append(key)
    first, second = keys_of
    fallback, branch = (
        (first, second)
        if first == "" or len(keys_of[first]) > len(keys_of[second])
        else (second, first)
    )
    if branch == "":
        fallback, branch = branch, fallback
    universe = [key for key, _ in table]
    w.act(f"if {_condition(facts, keys_of[branch], universe)}", line=False)
    w.glue(branch, dates)
    if fallback:
        w.act("else", line=False)
        w.glue(fallback, dates)
    w.act("end", line=False)


def _common_substring(texts: list[str]) -> str:
    """The longest text found in every one of ``texts`` (markers never split), or ''."""
    shortest = min(texts, key=len)
    for size in range(len(shortest), 0, -1):
        for start in range(len(shortest) - size + 1):
            candidate = shortest[start : start + size]
            if _marker_safe(candidate, "")[0] != candidate or snap_prefix(candidate) != candidate:
                continue
            if snap_suffix(candidate) != candidate:
                continue
            if all(candidate in t for t in texts):
                return candidate
    return ""


def _condition(facts: Sequence[str], keys: list[tuple[bool, ...]], universe) -> str:
    """The shortest Go condition true exactly on ``keys`` among the ``universe`` of keys."""
    want = set(keys)
    literals = [(i, v) for i in range(len(facts)) for v in (True, False)]
    terms = []
    for size in range(1, len(facts) + 1):
        for combo in itertools.combinations(literals, size):
            if len({i for i, _ in combo}) == size:
                terms.append(combo)
    matches = [(term, {k for k in universe if all(k[i] == v for i, v in term)}) for term in terms]
    for term, covered in matches:
        if covered == want:
            return _go_and(facts, term)
    for (t1, c1), (t2, c2) in itertools.combinations(matches, 2):
        if c1 | c2 == want and c1 <= want and c2 <= want:
            return f"or ({_go_and(facts, t1)}) ({_go_and(facts, t2)})"
    full = [tuple((i, k[i]) for i in range(len(facts))) for k in keys]
    return (
        "or " + " ".join(f"({_go_and(facts, t)})" for t in full)
        if len(full) > 1
        else _go_and(facts, full[0])
    )


def _go_and(facts: Sequence[str], term) -> str:
    literals = []
    for i, value in sorted(term, key=lambda lit: _ORDER.index(facts[lit[0]])):
        code = _GO_FACT[facts[i]]
        if value:
            literals.append(code if " " not in code else f"({code})")
        else:
            literals.append(f"(not {code})" if " " not in code else f"(not ({code}))")
    if len(literals) == 1:
        only = literals[0]
        return only[1:-1] if only.startswith("(") else only
    return "and " + " ".join(literals)


def common_prefix(*texts: str) -> str:
    if not texts:
        return ""
    prefix = texts[0]
    for t in texts[1:]:
        i = 0
        while i < min(len(prefix), len(t)) and prefix[i] == t[i]:
            i += 1
        prefix = prefix[:i]
    return prefix


def common_suffix(*texts: str) -> str:
    return common_prefix(*(t[::-1] for t in texts))[::-1]


def _marker_safe(head: str, tail: str) -> tuple[str, str]:
    """Never split a date marker between the shared text and the branches."""
    if head.rfind(DATE_OPEN) > head.rfind(DATE_CLOSE):
        head = head[: head.rindex(DATE_OPEN)]
    close = tail.find(DATE_CLOSE)
    if close >= 0 and (tail.find(DATE_OPEN) < 0 or close < tail.find(DATE_OPEN)):
        tail = tail[close + 1 :]
    return head, tail


def go_string(text: str) -> str:
    """``text`` as a Go interpreted string literal that survives Ollama's Modelfile parser.

    The parser keeps only printable runes (and whitespace), so everything else is escaped.
    """
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
