"""The turn structure of a chat template, read off by rendering it, and checked by re-rendering.

Ollama's Modelfile TEMPLATE is a Go template, not Jinja. Rather than keep a hand-written twin of
each template (the twin drifts, and a drifted template is the most reported failure:
ollama/ollama#8363, #6823), the Jinja template is rendered on conversations whose contents are
unique sentinels; the text between the sentinels is the template's literal glue (what comes
before the first user turn, between a user turn and an answer, after the last answer...). A Go
template is then generated from that glue alone. The glue is only trusted after re-rendering
many real conversations from it and comparing byte for byte with the Jinja output: a template
whose output depends on more than the roles (turn numbers, message content) cannot be expressed
this way, and is refused with the reason instead of being approximated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.errors import UserError
from runner.prompt.render import render_chat_template

# Sentinel contents: unique, printable, and unlike anything a template adds around content.
_S, _U1, _A1, _U2 = "⟦SYSTEM⟧", "⟦USER-1⟧", "⟦ASSISTANT-1⟧", "⟦USER-2⟧"

_SYSTEM = "You are a Zig expert for version 0.15.\nAnswer briefly."
_CONTENTS = (
    "Write a Zig function that adds two numbers.",
    "```zig\nfn add(a: i32, b: i32) i32 {\n    return a + b;\n}\n```",
    'What do {{ .Prompt }}, {% raw %} and "quotes" \\ mean here?',
    "Ünïcödé ✓ — 日本語\n\nsecond paragraph",
    "Thanks.",
)
_PAD = " \n "  # wrapped around contents to find templates that strip them


@dataclass(frozen=True)
class TurnStructure:
    """The literal text a template puts around message contents, keyed by the roles it joins.

    ``bos`` is a leading BOS token removed from ``head``/``head_system`` because the runtime
    (llama.cpp, hence Ollama) adds it when tokenizing; ``strips_content`` records that the
    Jinja template strips whitespace around contents, which a Go template cannot do.
    """

    head: str
    head_system: str
    system_to_user: str
    user_to_assistant: str
    assistant_to_user: str
    user_to_generation: str
    assistant_end: str
    bos: str = ""
    strips_content: bool = False

    def render(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """Render as the generated Go template does: a leading system message, then alternating
        user/assistant turns; the generation prompt follows a final user turn."""
        out: list[str] = []
        prev = ""
        rest = list(messages)
        if rest and rest[0]["role"] == "system":
            if rest[0]["content"]:
                out += [self.head_system, rest[0]["content"]]
                prev = "system"
            rest = rest[1:]
        glue = {
            ("", "user"): self.head,
            ("system", "user"): self.system_to_user,
            ("assistant", "user"): self.assistant_to_user,
            ("user", "assistant"): self.user_to_assistant,
        }
        for message in rest:
            role = message["role"]
            if (prev, role) not in glue:
                raise ValueError(f"unsupported role order: {prev or 'start'} -> {role}")
            out += [glue[prev, role], message["content"]]
            prev = role
        out.append({"user": self.user_to_generation, "assistant": self.assistant_end}.get(prev, ""))
        return "".join(out)


def probe_structure(
    source: str,
    *,
    bos_token: str | None,
    eos_token: str | None,
    runtime_adds_bos: bool = True,
    name: str = "template",
) -> TurnStructure:
    """Read the turn structure of ``source`` and verify it against the Jinja rendering.

    Raises ``UserError`` naming the template and the reason when it cannot be expressed.
    """

    def render(messages: list[dict[str, str]], gen: bool) -> str:
        return render_chat_template(
            source, messages, add_generation_prompt=gen, bos_token=bos_token, eos_token=eos_token
        )

    def fail(why: str) -> UserError:
        return UserError(f"chat template '{name}' cannot be turned into an Ollama TEMPLATE: {why}")

    def split(text: str, sentinels: Sequence[str], what: str) -> list[str]:
        parts, rest = [], text
        for sentinel in sentinels:
            if rest.count(sentinel) != 1:
                raise fail(
                    f"{what}: the {_label(sentinel)} content appears {rest.count(sentinel)} times, not once"
                )
            before, rest = rest.split(sentinel)
            parts.append(before)
        return [*parts, rest]

    u, s = _msg("user", _U1), _msg("system", _S)
    head, gen = split(render([u], True), [_U1], "one user turn")
    head_system, sys_to_user, gen_after_system = split(
        render([s, u], True), [_S, _U1], "a system prompt and a user turn"
    )
    _, user_to_assistant, assistant_end = split(
        render([u, _msg("assistant", _A1)], False), [_U1, _A1], "a user turn and an answer"
    )
    *_, assistant_to_user, gen_after_turns = split(
        render([u, _msg("assistant", _A1), _msg("user", _U2)], True),
        [_U1, _A1, _U2],
        "two user turns",
    )
    if not gen == gen_after_system == gen_after_turns:
        raise fail("the generation prompt depends on the earlier turns")

    bos = ""
    if runtime_adds_bos and bos_token and head.startswith(bos_token):
        if not head_system.startswith(bos_token):
            raise fail("it starts with bos_token only when there is no system prompt")
        bos, head, head_system = bos_token, head[len(bos_token) :], head_system[len(bos_token) :]

    structure = TurnStructure(
        head=head,
        head_system=head_system,
        system_to_user=sys_to_user,
        user_to_assistant=user_to_assistant,
        assistant_to_user=assistant_to_user,
        user_to_generation=gen,
        assistant_end=assistant_end,
        bos=bos,
    )
    mismatch = _first_mismatch(structure, verification_conversations(), render)
    if mismatch:
        raise fail(mismatch)
    padded = verification_conversations(pad=_PAD)
    if _first_mismatch(structure, padded, render):
        # Re-rendered from stripped contents: equal means the template strips, nothing else.
        stripped = [[{**m, "content": m["content"].strip()} for m in conv] for conv in padded]
        if any(
            structure.render(conv) != _drop_bos(render(list(orig), _ends_with_user(orig)), bos)
            for conv, orig in zip(stripped, padded, strict=True)
        ):
            raise fail(_first_mismatch(structure, padded, render) or "content is rewritten")
        structure = TurnStructure(**{**structure.__dict__, "strips_content": True})
    return structure


def verification_conversations(pad: str = "") -> list[list[dict[str, str]]]:
    """Multi-turn conversations with and without a system prompt, ending in either role."""
    turns = [
        _msg("user" if i % 2 == 0 else "assistant", pad + _CONTENTS[i] + pad) for i in range(5)
    ]
    conversations = []
    for n in range(1, len(turns) + 1):
        conversations.append(turns[:n])
        conversations.append([_msg("system", pad + _SYSTEM + pad), *turns[:n]])
    return conversations


def find_end_of_turn(
    source: str, bos: str | None, eos: str | None, special: Sequence[str], name: str
) -> tuple[str, list[str]]:
    """For a template without a sidecar: the special token that closes an assistant turn, and
    every special token found in the glue after an answer (the stops for inference)."""
    structure = probe_structure(
        source, bos_token=bos, eos_token=eos, runtime_adds_bos=False, name=name
    )
    candidates = [t for t in special if t and t != bos]
    found = sorted(
        (structure.assistant_end.find(t), -len(t), t)
        for t in candidates
        if t in structure.assistant_end
    )
    if not found:
        raise UserError(
            f"chat template '{name}' ends an assistant turn with "
            f"{structure.assistant_end!r}, which holds no special token of the tokenizer: a "
            "model trained on it cannot learn to stop. Use a template from templates/ or add a "
            "sidecar .yaml naming its end_of_turn"
        )
    glue = structure.assistant_end + structure.assistant_to_user
    stops = [t for t in candidates if t in glue]
    return found[0][2], stops


def _first_mismatch(structure: TurnStructure, conversations, render) -> str | None:
    for conv in conversations:
        expected = _drop_bos(render(list(conv), _ends_with_user(conv)), structure.bos)
        got = structure.render(conv)
        if got != expected:
            at = next(
                (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                min(len(got), len(expected)),
            )
            roles = "/".join(m["role"] for m in conv)
            return (
                f"for a {roles} conversation its output depends on more than the roles of the "
                f"turns; at character {at} Jinja gives {expected[at : at + 40]!r} where the turn "
                f"structure gives {got[at : at + 40]!r}"
            )
    return None


def _drop_bos(text: str, bos: str) -> str:
    return text[len(bos) :] if bos and text.startswith(bos) else text


def _ends_with_user(conversation: Sequence[Mapping[str, Any]]) -> bool:
    return bool(conversation) and conversation[-1]["role"] == "user"


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _label(sentinel: str) -> str:
    return sentinel.strip("⟦⟧").lower()
