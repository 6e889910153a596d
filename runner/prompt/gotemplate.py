"""Ollama's Go TEMPLATE, generated from the turn structure of the recipe's Jinja chat template.

Ollama (template/template.go) renders a TEMPLATE in one of two ways. The current one passes
``.System`` (every system message, joined) and ``.Messages`` (``.Role``/``.Content``, consecutive
same-role messages merged); the legacy one, used by Ollama versions that predate ``.Messages``,
executes the template once per user turn with ``.System``, ``.Prompt`` and ``.Response`` and cuts
the last execution just after ``{{ .Response }}``. The generated template holds both forms
(``{{ if .Messages }} ... {{ else }} ... {{ end }}``); the legacy form is included only when the
structure allows it to render the same text, otherwise a note says why it was left out.

Every literal is written as a Go string constant (``{{ "..." }}``), so that the trim markers
``{{-`` used to lay the template out can never eat whitespace that belongs to the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.errors import UserError
from runner.prompt.structure import TurnStructure, probe_structure
from runner.prompt.template import ChatTemplate


@dataclass(frozen=True)
class OllamaTemplate:
    """A generated TEMPLATE, the structure it came from, and what it cannot do."""

    text: str
    structure: TurnStructure
    notes: tuple[str, ...] = ()


def ollama_template(template: ChatTemplate, runtime_adds_bos: bool = True) -> OllamaTemplate:
    """Derive and verify the Go TEMPLATE of ``template``.

    ``runtime_adds_bos``: the GGUF's tokenizer adds BOS itself (``tokenizer.ggml.add_bos_token``),
    so a BOS the Jinja template starts with is left out of the TEMPLATE rather than doubled.
    """
    structure = probe_structure(
        template.source,
        bos_token=template.bos_token,
        eos_token=template.eos_token,
        runtime_adds_bos=runtime_adds_bos,
        name=template.name,
    )
    notes = []
    if structure.strips_content:
        notes.append(
            f"template '{template.name}' strips whitespace around message contents; Ollama's Go "
            "templates cannot, so a message with leading or trailing whitespace renders with it"
        )
    legacy, why_not = _legacy_form(structure)
    if legacy is None:
        notes.append(f"no legacy .Prompt/.Response form (Ollama before .Messages): {why_not}")
    text = _messages_form(structure)
    if legacy is not None:
        text = f"{{{{- if .Messages }}}}\n{text}\n{{{{- else }}}}\n{legacy}\n{{{{- end }}}}"
    if '"""' in text:
        raise UserError(
            f"chat template '{template.name}' renders '\"\"\"', which a Modelfile cannot quote"
        )
    return OllamaTemplate(text=text, structure=structure, notes=tuple(notes))


def _messages_form(s: TurnStructure) -> str:
    """The ``.Messages`` form: system first, then the glue chosen by the previous role."""
    q = go_string
    return "\n".join(
        [
            '{{- $prev := "" }}',
            f'{{{{- if .System }}}}{{{{ {q(s.head_system)} }}}}{{{{ .System }}}}{{{{ $prev = "system" }}}}{{{{ end }}}}',
            "{{- range .Messages }}",
            '{{- if eq .Role "user" }}',
            f'{{{{- if eq $prev "system" }}}}{{{{ {q(s.system_to_user)} }}}}'
            f'{{{{- else if eq $prev "assistant" }}}}{{{{ {q(s.assistant_to_user)} }}}}'
            f"{{{{- else }}}}{{{{ {q(s.head)} }}}}{{{{ end }}}}",
            '{{- .Content }}{{ $prev = "user" }}',
            '{{- else if eq .Role "assistant" }}',
            f'{{{{- {q(s.user_to_assistant)} }}}}{{{{ .Content }}}}{{{{ $prev = "assistant" }}}}',
            "{{- end }}",
            "{{- end }}",
            f'{{{{- if eq $prev "user" }}}}{{{{ {q(s.user_to_generation)} }}}}'
            f'{{{{- else if eq $prev "assistant" }}}}{{{{ {q(s.assistant_end)} }}}}{{{{ end }}}}',
        ]
    )


def _legacy_form(s: TurnStructure) -> tuple[str | None, str]:
    """The ``.Prompt``/``.Response`` form, executed once per turn and concatenated.

    It cannot tell the first turn from later ones except by ``.System``, and the last execution
    ends right after the text before ``{{ .Response }}``; so it needs the glue between turns to
    end with the head, and the generation prompt to equal the glue before an answer.
    """
    if s.user_to_assistant != s.user_to_generation:
        return None, (
            f"the generation prompt {_short(s.user_to_generation)} differs from the text before "
            f"a trained answer {_short(s.user_to_assistant)}"
        )
    if not s.assistant_to_user.endswith(s.head):
        return None, (
            f"the text between turns {_short(s.assistant_to_user)} does not end with the text "
            f"before the first turn {_short(s.head)}"
        )
    q = go_string
    after_answer = s.assistant_to_user[: len(s.assistant_to_user) - len(s.head)]
    return (
        f"{{{{- if .System }}}}{{{{ {q(s.head_system)} }}}}{{{{ .System }}}}{{{{ {q(s.system_to_user)} }}}}"
        f"{{{{- else }}}}{{{{ {q(s.head)} }}}}{{{{ end }}}}"
        f"{{{{- .Prompt }}}}{{{{ {q(s.user_to_assistant)} }}}}{{{{ .Response }}}}{{{{ {q(after_answer)} }}}}",
        "",
    )


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + "..."


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
