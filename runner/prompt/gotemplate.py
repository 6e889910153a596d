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

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from runner.errors import UserError
from runner.prompt.gorender import GoTemplateError, render_ollama
from runner.prompt.gowriter import (
    Writer,
    choice,
    common_prefix,
    common_suffix,
    date_expression,
    go_string,
)
from runner.prompt.structure import (
    DATE_OPEN,
    REFERENCE_DAY,
    SYSTEM,
    TurnStructure,
    jinja_renderer,
    probe_structure,
    trim,
    verification_conversations,
)
from runner.prompt.template import ChatTemplate

__all__ = ["OllamaTemplate", "date_expression", "family_of", "go_string", "ollama_template"]

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


def template_mismatch(
    template: ChatTemplate, go_text: str, runtime_adds_bos: bool = True
) -> str | None:
    """None when ``go_text`` (a TEMPLATE written elsewhere, e.g. an Ollama model's own template
    layer) renders, through Ollama's renderer, what ``template`` renders on every verification
    conversation; else the first difference."""
    structure = probe_structure(
        template.source,
        bos_token=template.bos_token,
        eos_token=template.eos_token,
        runtime_adds_bos=runtime_adds_bos,
        name=template.name,
    )
    return _verifier(template, structure)(go_text)


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


def _dates(s: TurnStructure) -> dict[str, list[str]]:
    return {fmt: date_expression(fmt) or [] for fmt in s.dates}


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
        head = common_prefix(parts["head"], opening)
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
    a = common_prefix(*openers.values())
    b = common_suffix(*(o[len(a) :] for o in openers.values()))
    if any(o[len(a) : len(o) - len(b)] != role for role, o in openers.items()):
        return None
    w = Writer()
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
    w = Writer()
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


def _last_line(w: Writer, p: Mapping[str, str]) -> None:
    if p["generation"] or p["final"]:
        w.act("$last := eq (len (slice $.Messages $i)) 1")


def _endings(w: Writer, p: Mapping[str, str]) -> None:
    for role, text in (("user", p["generation"]), ("assistant", p["final"])):
        if text:
            w.act(f'if and $last (eq .Role "{role}")')
            w.text(text)
            w.act("end", line=False)


def positional(s: TurnStructure) -> str:
    """The general form: each turn's opening chosen by its position facts."""
    dates = _dates(s)
    used = {f for g in (*s.before.values(), *s.end.values()) for f in g.facts}
    w = Writer()
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
        choice(w, s.before[role], dates)
        w.act(".Content", line=False)
        w.glue(s.after[role], dates)
        if role in s.end:
            end = s.end[role]
            if end.values() != [""]:
                w.act("if $last")
                choice(w, end, dates)
                w.act("end", line=False)
    w.act("end")
    if "first" in used or "single" in used:
        w.act("$first = false")
    w.act("end")
    return w.result()


FORMS: tuple[tuple[str, Callable[[TurnStructure], str | None]], ...] = (
    ("role-tagged", role_tagged),
    ("role-chain", role_chain),
    ("positional", positional),
)
