"""Ollama's Go TEMPLATE, written from the turn structure of the recipe's Jinja chat template.

The structure (``runner.prompt.structure``) says what the Jinja template writes around each
turn and where. From it, the shortest form that fits is written, as a person would write it
in Ollama's library (ollama/ollama template/*.gotmpl):

- ``role-tagged``: every turn is the same header around ``{{ .Role }}`` (ChatML, Llama 3,
  Zephyr, Phi-3);
- ``role-chain``: one branch per role (Alpaca, DeepSeek-Coder, Gemma, StarCoder2);
- ``positional``: the general form, for templates whose text depends on the turn's position
  (Llama 2's ``<<SYS>>`` in the first turn, Mistral's system prompt in the last user turn,
  Qwen3's empty reasoning block on the final answer), testing ``$first``, ``$last`` (as
  Ollama's own templates do: ``eq (len (slice $.Messages $i)) 1``) and the last user turn.

A form is used only after it renders, through Ollama's renderer (``runner.prompt.gorender``),
byte for byte what the Jinja template renders on many real conversations: with and without a
system prompt, one to eight turns, ending with either role, awkward contents. The first
form that passes is written; when none does, the template is refused with the reason.

Only the ``.Messages`` form is written (Ollama 0.2 and later); Ollama before it executed a
TEMPLATE once per turn with ``.Prompt``/``.Response``, which cannot express positions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runner.errors import UserError
from runner.prompt.gorender import GoTemplateError, render_ollama
from runner.prompt.structure import (
    DATE_CLOSE,
    DATE_OPEN,
    REFERENCE_DAY,
    SYSTEM,
    Glue,
    TurnStructure,
    jinja_renderer,
    probe_structure,
    snap_prefix,
    snap_suffix,
    trim,
    verification_conversations,
)
from runner.prompt.template import ChatTemplate

# Families recognised by their markers, for the Modelfile's comment (first match wins).
FAMILIES = (
    ("<|im_start|>", "ChatML"),
    ("<|start_header_id|>", "Llama 3"),
    ("<start_of_turn>", "Gemma"),
    ("<<SYS>>", "Llama 2"),
    ("[INST]", "Mistral"),
    ("<|end|>", "Phi-3"),
    ("<|user|>", "Zephyr"),
    ("<|EOT|>", "DeepSeek-Coder"),
    ("@@ Instruction", "Magicoder"),
    ("### Instruction", "Alpaca"),
)

# The shipped template that writes a family's format, for a refusal's advice.
_SHIPPED_FOR = {
    "ChatML": "chatml",
    "Llama 2": "llama2",
    "DeepSeek-Coder": "deepseek-coder",
    "Zephyr": "zephyr",
    "Alpaca": "alpaca",
}


@dataclass(frozen=True)
class OllamaTemplate:
    """A generated TEMPLATE, the structure it came from, the form written, and notes."""

    text: str
    structure: TurnStructure
    form: str
    family: str | None = None
    notes: tuple[str, ...] = ()


def ollama_template(template: ChatTemplate, runtime_adds_bos: bool = True) -> OllamaTemplate:
    """Derive and verify the Go TEMPLATE of ``template``.

    ``runtime_adds_bos``: the GGUF's tokenizer adds BOS itself (``tokenizer.ggml.add_bos_token``),
    so a BOS the Jinja template starts with is left out of the TEMPLATE rather than doubled.
    Raises ``UserError`` with the reason (and what to use instead) when no form renders the
    same text.
    """
    name = template.name
    try:
        structure = probe_structure(
            template.source,
            bos_token=template.bos_token,
            eos_token=template.eos_token,
            runtime_adds_bos=runtime_adds_bos,
            name=name,
        )
    except UserError as exc:
        raise UserError(_with_advice(str(exc), template.source)) from None
    for fmt in structure.dates:
        if date_expression(fmt) is None:
            raise UserError(
                f"chat template '{name}' cannot be turned into an Ollama TEMPLATE: it writes "
                f"today's date as strftime {fmt!r}, which Ollama's currentDate (YYYY-MM-DD) "
                "cannot be cut into; use a copy of the template that writes a fixed date"
            )
    check = _verifier(template, structure)
    mismatches = []
    for form, build in FORMS:
        text = build(structure)
        if text is None:
            continue
        mismatch = check(text)
        if mismatch is None:
            if '"""' in text:
                raise UserError(
                    f"chat template '{name}' renders '\"\"\"', which a Modelfile cannot quote"
                )
            return OllamaTemplate(
                text=text,
                structure=structure,
                form=form,
                family=family_of(template.source),
                notes=tuple(_notes(template, structure)),
            )
        mismatches.append(f"{form}: {mismatch}")
    raise UserError(
        _with_advice(
            f"chat template '{name}' cannot be turned into an Ollama TEMPLATE: "
            f"{mismatches[-1] if mismatches else 'no form fits its structure'}",
            template.source,
        )
    )


def family_of(source: str) -> str | None:
    """The family a template's markers name (for comments), or None."""
    return next((family for marker, family in FAMILIES if marker in source), None)


def _with_advice(message: str, source: str) -> str:
    """A refusal's message with what to use instead."""
    if "tool-use template" in message or "fixed date" in message:
        return message  # the reason already says what to use
    family = family_of(source)
    shipped = _SHIPPED_FOR.get(family or "")
    if shipped:
        return (
            f"{message}. The shipped template '{shipped}' writes the {family} format in a form "
            f"Ollama can express: set prompt.template: {shipped}"
        )
    return (
        f"{message}. Use a shipped template (prompt.template: chatml, llama2, alpaca, "
        "deepseek-coder, zephyr) or a .jinja whose text depends only on the roles and the "
        "positions of the turns"
    )


def _notes(template: ChatTemplate, s: TurnStructure) -> list[str]:
    notes = []
    if s.strips:
        roles = ", ".join(f"{role} ({kind})" for role, kind in sorted(s.strips.items()))
        notes.append(
            f"template '{template.name}' trims whitespace around message contents [{roles}]; "
            "Ollama's Go templates cannot, so a message with leading or trailing whitespace "
            "renders with it"
        )
    if s.system == "refused":
        notes.append(
            f"template '{template.name}' takes no system prompt ({s.system_error}); this "
            "TEMPLATE leaves a system message out (set prompt.system_fallback to fold it into "
            "the first user turn)"
        )
    elif s.system == "dropped":
        notes.append(
            f"template '{template.name}' drops the system prompt, and so does this TEMPLATE"
        )
    if s.dates:
        notes.append(
            f"template '{template.name}' writes today's date ({', '.join(s.dates)}): the TEMPLATE "
            "asks Ollama for it (currentDate)"
        )
    return notes


# --- verification -------------------------------------------------------------------------


def _verifier(template: ChatTemplate, s: TurnStructure) -> Callable[[str], str | None]:
    """``check(go_text)``: None when Ollama's rendering equals the Jinja rendering on every
    verification conversation, else a description of the first difference."""
    jinja = jinja_renderer(
        template.source, template.bos_token, template.eos_token, day=REFERENCE_DAY
    )
    cases = []
    for pad in ("", " \n "):
        for conv in verification_conversations(pad=pad):
            if pad:
                # Padding shows the structure holds around whitespace; a role whose content the
                # template trims is compared trimmed (the note says Ollama cannot trim).
                conv = [{**m, "content": trim(m["content"], s.strips.get(m["role"]))} for m in conv]
            refused = s.system == "refused"
            asked = [m for m in conv if m["role"] != "system"] if refused else conv
            try:
                expected = jinja(asked, asked[-1]["role"] == "user")
            except UserError as exc:
                raise UserError(f"chat template '{template.name}' {exc}") from None
            if s.bos and expected.startswith(s.bos):
                expected = expected[len(s.bos) :]
            cases.append((conv, expected))

    def check(text: str) -> str | None:
        for given, expected in cases:
            try:
                got = render_ollama(text, given, today=REFERENCE_DAY.date())
            except GoTemplateError as exc:
                return f"Ollama cannot render it ({exc})"
            if got != expected:
                at = next(
                    (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                    min(len(got), len(expected)),
                )
                roles = "/".join(m["role"] for m in given)
                return (
                    f"for a {roles} conversation, at character {at} Jinja gives "
                    f"{expected[at : at + 40]!r} where Ollama would give {got[at : at + 40]!r}"
                )
        return None

    return check


# --- writing Go text ------------------------------------------------------------------------


class _Writer:
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


def _dates(s: TurnStructure) -> dict[str, list[str]]:
    return {fmt: date_expression(fmt) or [] for fmt in s.dates}


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


# --- the forms ------------------------------------------------------------------------------


def _simple_parts(s: TurnStructure) -> dict[str, str] | None:
    """The pieces of a structure that does not depend on position: head (always), default
    (only without a system prompt), system turn opening/closing, each role's opening, the
    generation prompt and the text after a final answer. None when it depends on position."""
    user, assistant = s.before["user"], s.before["assistant"]
    if not set(user.facts) <= {"sys", "first"} or assistant.constant() is None:
        return None
    if any(g.constant() is None for g in s.end.values()):
        return None
    later = [
        t for key, t in user.table if "first" in user.facts and not key[user.facts.index("first")]
    ]
    if len(set(later)) > 1:
        return None
    values = {"sys": False, "first": True, "last": False, "last_user": False}
    plain_first = user.text(values)
    opener = later[0] if later else plain_first
    if not plain_first.endswith(opener):
        return None
    parts = {
        "head": plain_first[: len(plain_first) - len(opener)],
        "default": "",
        "system_open": "",
        "system_close": "",
        "user": opener,
        "assistant": assistant.constant() or "",
        "generation": s.end["user"].constant() or "",
        "final": s.end["assistant"].constant() if "assistant" in s.end else "",
    }
    if s.takes_system:
        with_system = user.text({**values, "sys": True})
        if with_system.count(SYSTEM) != 1:
            return None
        opening, closing = with_system.split(SYSTEM)
        if not closing.endswith(opener):
            return None
        head = _common_prefix(parts["head"], opening)
        parts.update(
            head=head,
            default=parts["head"][len(head) :],
            system_open=opening[len(head) :],
            system_close=closing[: len(closing) - len(opener)],
        )
    elif any(SYSTEM in t for _, t in user.table):
        return None
    if any(DATE_OPEN in v for v in parts.values()):
        return None
    return parts


def role_tagged(s: TurnStructure) -> str | None:
    """Every turn is ``A{{ .Role }}B{{ .Content }}C``: ChatML, Llama 3, Zephyr, Phi-3."""
    p = _simple_parts(s)
    if p is None or p["default"] or not s.takes_system:
        return None
    closes = {s.after["user"], s.after["assistant"], p["system_close"]}
    if len(closes) != 1:
        return None
    openers = {"system": p["system_open"], "user": p["user"], "assistant": p["assistant"]}
    a = _common_prefix(*openers.values())
    b = _common_suffix(*(o[len(a) :] for o in openers.values()))
    if any(o[len(a) : len(o) - len(b)] != role for role, o in openers.items()):
        return None
    w = _Writer()
    if p["head"]:
        w.text(p["head"])
    w.act("range $i, $_ := .Messages")
    _last_line(w, p)
    w.text(a)
    w.act(".Role", line=False)
    w.text(b)
    w.act(".Content", line=False)
    w.text(closes.pop())
    _endings(w, p)
    w.act("end")
    return w.result()


def role_chain(s: TurnStructure) -> str | None:
    """One branch per role: Alpaca, DeepSeek-Coder, Gemma, StarCoder2, Vicuna."""
    p = _simple_parts(s)
    if p is None:
        return None
    w = _Writer()
    if p["head"]:
        w.text(p["head"])
    if p["default"]:
        w.act("if not .System")
        w.text(p["default"])
        w.act("end", line=False)
    w.act("range $i, $_ := .Messages")
    _last_line(w, p)
    branches = [
        ("user", p["user"], s.after["user"]),
        ("assistant", p["assistant"], s.after["assistant"]),
    ]
    if s.takes_system:
        branches.insert(0, ("system", p["system_open"], p["system_close"]))
    for i, (role, opener, closer) in enumerate(branches):
        w.act(f'{"if" if i == 0 else "else if"} eq .Role "{role}"')
        w.text(opener)
        w.act(".Content", line=False)
        w.text(closer)
    w.act("end")
    _endings(w, p)
    w.act("end")
    return w.result()


def _last_line(w: _Writer, p: Mapping[str, str]) -> None:
    if p["generation"] or p["final"]:
        w.act("$last := eq (len (slice $.Messages $i)) 1")


def _endings(w: _Writer, p: Mapping[str, str]) -> None:
    for role, text in (("user", p["generation"]), ("assistant", p["final"])):
        if text:
            w.act(f'if and $last (eq .Role "{role}")')
            w.text(text)
            w.act("end", line=False)


def positional(s: TurnStructure) -> str:
    """The general form: each turn's opening chosen by its position facts."""
    dates = _dates(s)
    used = {f for g in (*s.before.values(), *s.end.values()) for f in g.facts}
    w = _Writer()
    if "last_user" in used:
        w.act("$lastUser := -1")
        w.act(
            'range $i, $_ := .Messages }}{{ if eq .Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end'
        )
    if "first" in used or "single" in used:
        w.act("$first := true")
    w.act("range $i, $_ := .Messages")
    w.act('if eq .Role "system" }}{{ continue }}{{ end')
    ends = any(g.values() != [""] for g in s.end.values())
    if ends or "last" in used:
        w.act("$last := eq (len (slice $.Messages $i)) 1")
    for i, role in enumerate(("user", "assistant")):
        w.act(f'{"if" if i == 0 else "else if"} eq .Role "{role}"')
        _choice(w, s.before[role], dates)
        w.act(".Content", line=False)
        w.glue(s.after[role], dates)
        if role in s.end:
            end = s.end[role]
            if end.values() != [""]:
                w.act("if $last")
                _choice(w, end, dates)
                w.act("end", line=False)
    w.act("end")
    if "first" in used or "single" in used:
        w.act("$first = false")
    w.act("end")
    return w.result()


_ORDER = ("first", "single", "last", "last_user", "sys")
_GO_FACT = {
    "sys": "$.System",
    "first": "$first",
    "single": "$first",
    "last": "$last",
    "last_user": "eq $i $lastUser",
}


def _choice(w: _Writer, glue: Glue, dates: Mapping[str, list[str]]) -> None:
    """``glue`` as literal text, or as if/else chains over its facts."""
    _emit_table(w, glue.facts, list(glue.table), dates)


def _emit_table(w: _Writer, facts, table: list[tuple[tuple[bool, ...], str]], dates) -> None:
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
            tail = snap_suffix(_common_suffix(*values))
            head = snap_prefix(_common_prefix(*(v[: len(v) - len(tail)] for v in values)))
        else:
            head = snap_prefix(_common_prefix(*values))
            tail = snap_suffix(_common_suffix(*(v[len(head) :] for v in values)))
        head, tail = _marker_safe(head, tail)
        options.append(((head == "" or head.endswith("\n"), len(head) + len(tail)), head, tail))
    _, head, tail = max(options, key=lambda o: o[0])
    return head, tail


def _if_chain(w: _Writer, facts, table, dates) -> None:
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


def _common_prefix(*texts: str) -> str:
    if not texts:
        return ""
    prefix = texts[0]
    for t in texts[1:]:
        i = 0
        while i < min(len(prefix), len(t)) and prefix[i] == t[i]:
            i += 1
        prefix = prefix[:i]
    return prefix


def _common_suffix(*texts: str) -> str:
    return _common_prefix(*(t[::-1] for t in texts))[::-1]


def _marker_safe(head: str, tail: str) -> tuple[str, str]:
    """Never split a date marker between the shared text and the branches."""
    if head.rfind(DATE_OPEN) > head.rfind(DATE_CLOSE):
        head = head[: head.rindex(DATE_OPEN)]
    close = tail.find(DATE_CLOSE)
    if close >= 0 and (tail.find(DATE_OPEN) < 0 or close < tail.find(DATE_OPEN)):
        tail = tail[close + 1 :]
    return head, tail


FORMS: tuple[tuple[str, Callable[[TurnStructure], str | None]], ...] = (
    ("role-tagged", role_tagged),
    ("role-chain", role_chain),
    ("positional", positional),
)


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
