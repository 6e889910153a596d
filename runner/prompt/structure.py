"""The turn structure of a chat template, read off by rendering it on sentinel conversations.

Ollama's Modelfile TEMPLATE is a Go template, not Jinja. Rather than keep a hand-written twin of
each template (the twin drifts, and a drifted template is the most reported failure:
ollama/ollama#8363, #6823), the Jinja template is rendered on conversations whose contents are
unique sentinels, one to several turns, with and without a system prompt; the text between
the sentinels is the template's literal glue. Each glue is then explained as a function of
where it sits: the role of the turn it opens, and a few position facts Ollama's templates can
test (the first turn, the last turn, the last user turn, whether there is a system prompt).
Where the system prompt lands is part of the glue (its own turn, folded into the first or
the last user turn, or nowhere), and so are the dates a template writes (``strftime_now``).

The structure is only a proposal: ``runner.prompt.gotemplate`` writes a Go template from it
and trusts it only after rendering many real conversations through Ollama's renderer and
comparing byte for byte with the Jinja output. A template whose glue depends on more than
these facts (numbered turns, the contents themselves) is refused with the reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.errors import UserError
from runner.prompt.render import render_chat_template

# Sentinel contents: unique, printable, and unlike anything a template adds around content.
_SYSTEM_SENTINEL = "⟦SYSTEM⟧"
_TURNS = 6  # sentinel conversations have one to six turns

# Markers inside glue text: where the system prompt goes, and a date written by strftime_now.
SYSTEM = "\x00"
DATE_OPEN, DATE_CLOSE = "\x01", "\x02"

# Position facts a glue may depend on, in the order they are preferred (fewest first).
TURN_FACTS = ("sys", "first", "last", "last_user")
END_FACTS = ("sys", "single")

# The day verification renders on (both sides), so that a template writing today's date can
# be compared with one that asks Ollama for it.
REFERENCE_DAY = dt.datetime(2024, 7, 26, 12, 0, 0)

_SYSTEM_TEXT = "You are a Zig expert for version 0.15.\nAnswer briefly."
_CONTENTS = (
    "Write a Zig function that adds two numbers.",
    "```zig\nfn add(a: i32, b: i32) i32 {\n    return a + b;\n}\n```",
    'What do {{ .Prompt }}, {% raw %} and "quotes" \\ mean here?',
    "Ünïcödé ✓ — 日本語\n\nsecond paragraph",
    "Thanks.",
    "Now in C: `int add(int a, int b);`",
    "<b>html</b> & $vars {{ .Content }}",
    "Done.",
)
_PAD = " \n "  # wrapped around contents to find templates that strip them


@dataclass(frozen=True)
class Glue:
    """One piece of glue as a table: the values of ``facts`` -> literal text (with markers)."""

    facts: tuple[str, ...]
    table: tuple[tuple[tuple[bool, ...], str], ...]

    def text(self, values: Mapping[str, bool]) -> str:
        key = tuple(values[f] for f in self.facts)
        for k, text in self.table:
            if k == key:
                return text
        raise KeyError(f"no glue observed for {dict(zip(self.facts, key, strict=True))}")

    def values(self) -> list[str]:
        return list(dict.fromkeys(text for _, text in self.table))

    def constant(self) -> str | None:
        values = self.values()
        return values[0] if len(values) == 1 else None


@dataclass(frozen=True)
class TurnStructure:
    """What a template writes around message contents.

    ``before[role]`` is the text before a user or assistant turn's content, ``after[role]``
    the text right after it (the same wherever the turn is), ``end[role]`` what follows the
    ``after`` text of the last turn (the generation prompt after a user turn). ``SYSTEM`` marks
    where the system prompt goes; ``system`` says how the template treats one: ``turn``
    (before the first user turn), ``first_user``/``last_user`` (inside that turn),
    ``dropped``, ``refused`` (the template raises: ``system_error``), or ``placed`` (elsewhere).
    ``bos`` is a leading BOS token left out because the runtime adds it; ``strips`` maps a role
    to how the template trims its content (``strip``, ``lstrip``, ``rstrip``), which a Go
    template cannot do; ``dates`` are the strftime formats the template writes today's date in.
    """

    before: Mapping[str, Glue]
    after: Mapping[str, str]
    end: Mapping[str, Glue]
    system: str
    system_error: str | None = None
    bos: str = ""
    strips: Mapping[str, str] = field(default_factory=dict)
    dates: tuple[str, ...] = ()

    @property
    def takes_system(self) -> bool:
        return self.system not in ("dropped", "refused")

    @property
    def strips_content(self) -> bool:
        return bool(self.strips)

    def render(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The text the structure gives ``messages`` (a leading system message, then
        alternating user/assistant turns starting with a user turn), date markers left in."""
        rest = list(messages)
        system = ""
        if rest and rest[0]["role"] == "system":
            system = rest[0]["content"]
            rest = rest[1:]
        out = []
        n = len(rest)
        for j, message in enumerate(rest):
            role = message["role"]
            if j:
                out.append(self.after[rest[j - 1]["role"]])
            out.append(self.before[role].text(turn_facts(rest, j, bool(system))))
            out.append(message["content"])
        if rest:
            last = rest[-1]["role"]
            out.append(self.after[last])
            out.append(self.end[last].text(end_facts(n, bool(system))))
        return "".join(out).replace(SYSTEM, system)

    @property
    def assistant_end(self) -> str:
        """The text after a final answer (where a trained model must stop)."""
        return self.after["assistant"] + self.end["assistant"].values()[0]

    @property
    def assistant_to_user(self) -> str:
        """The text between an answer and the next user turn."""
        return self.after["assistant"] + self.before["user"].values()[-1]


def turn_facts(turns: Sequence[Mapping[str, Any]], j: int, sys: bool) -> dict[str, bool]:
    """The position facts of turn ``j`` of ``turns`` (system message excluded)."""
    roles = [t["role"] for t in turns]
    users = [i for i, r in enumerate(roles) if r == "user"]
    return {
        "sys": sys,
        "first": j == 0,
        "last": j == len(turns) - 1,
        "last_user": bool(users) and j == users[-1],
    }


def end_facts(n: int, sys: bool) -> dict[str, bool]:
    return {"sys": sys, "single": n == 1}


def jinja_renderer(
    source: str, bos_token: str | None, eos_token: str | None, *, day: dt.datetime | None = None
) -> Callable[[Sequence[Mapping[str, Any]], bool], str]:
    """``render(messages, add_generation_prompt)`` with ``strftime_now`` fixed: to
    ``day``, or (without one) to a marker naming the format, so that a probe sees where the
    template writes a date and in which format."""

    def strftime_now(fmt: str) -> str:
        if day is not None:
            return day.strftime(fmt)
        return f"{DATE_OPEN}{fmt}{DATE_CLOSE}"

    def render(messages: Sequence[Mapping[str, Any]], gen: bool) -> str:
        return render_chat_template(
            source,
            messages,
            add_generation_prompt=gen,
            bos_token=bos_token,
            eos_token=eos_token,
            strftime_now=strftime_now,
        )

    return render


def probe_structure(
    source: str,
    *,
    bos_token: str | None,
    eos_token: str | None,
    runtime_adds_bos: bool = True,
    name: str = "template",
) -> TurnStructure:
    """Read the turn structure of ``source``.

    Raises ``UserError`` naming the template and the reason when its output depends on more
    than the position facts (``TURN_FACTS``), or when it refuses plain conversations.
    """
    render = jinja_renderer(source, bos_token, eos_token)

    def fail(why: str) -> UserError:
        return UserError(f"chat template '{name}' cannot be turned into an Ollama TEMPLATE: {why}")

    plain = [sentinel_conversation(n) for n in range(1, _TURNS + 1)]
    outputs = []
    for conv in plain:
        try:
            outputs.append(render(conv, _ends_with_user(conv)))
        except UserError as exc:
            hint = ""
            if "tools" in source or "functions" in source:
                hint = "; it looks like a tool-use template: use the model's plain chat template"
            raise fail(
                f"it refuses a {_roles(conv)} conversation without tools ({exc}){hint}"
            ) from None

    system, system_error, system_outputs = "turn", None, []
    for conv in plain:
        with_system = [_msg("system", _SYSTEM_SENTINEL), *conv]
        try:
            system_outputs.append(render(with_system, _ends_with_user(conv)))
        except UserError as exc:
            system_error = str(exc)
            system_outputs.append(None)
    if system_error is not None and any(o is not None for o in system_outputs):
        raise fail(f"it refuses a system prompt in some conversations only ({system_error})")
    if system_error is not None:
        system, system_outputs = "refused", []
    # A user turn closed without the generation prompt: where the template's author ends a
    # user turn, which separates its closing from the opening of the answer.
    closings = []
    for conv in plain:
        if _ends_with_user(conv):
            with contextlib.suppress(UserError):
                closings.append((conv, render(conv, False)))

    texts = outputs + [o for o in system_outputs if o is not None] + [t for _, t in closings]
    bos = ""
    if runtime_adds_bos and bos_token and any(t.startswith(bos_token) for t in texts):
        if not all(t.startswith(bos_token) for t in texts):
            raise fail("it starts with bos_token in some conversations only")
        bos = bos_token

    rows: list[tuple[list[Mapping[str, Any]], bool, list[str]]] = []
    placed = []
    for conv, text in zip(plain, outputs, strict=True):
        rows.append((conv, False, _split(text[len(bos) :], conv, None, fail)))
    for conv, text in zip(plain, system_outputs, strict=False):
        glue = _split(text[len(bos) :], conv, _SYSTEM_SENTINEL, fail)
        rows.append((conv, True, glue))
        placed.append(next((j for j, g in enumerate(glue) if SYSTEM in g), None))
    closing_glue = [_split(t[len(bos) :], conv, None, fail)[-1] for conv, t in closings]

    structure = _fit(rows, closing_glue, fail)
    if system != "refused":
        system = _system_placement(placed, plain, structure[0]["user"])
    dates = tuple(
        dict.fromkeys(
            g.split(DATE_OPEN, 1)[1].split(DATE_CLOSE, 1)[0]
            for _, _, glue in rows
            for g in glue
            if DATE_OPEN in g
        )
    )
    strips = _content_trimming(render, system != "refused")
    return TurnStructure(
        before=structure[0],
        after=structure[1],
        end=structure[2],
        system=system,
        system_error=system_error,
        bos=bos,
        strips=strips,
        dates=dates,
    )


def sentinel_conversation(n: int) -> list[dict[str, str]]:
    """``n`` alternating turns starting with a user turn, each content a unique sentinel."""
    return [
        _msg(
            "user" if i % 2 == 0 else "assistant",
            f"⟦{'USER' if i % 2 == 0 else 'ASSISTANT'}-{i // 2 + 1}⟧",
        )
        for i in range(n)
    ]


def _split(text: str, conv, system_sentinel: str | None, fail) -> list[str]:
    """The glue around the contents of ``conv`` in ``text``: n + 1 pieces, the system
    sentinel (if any) replaced by the ``SYSTEM`` marker in the piece it falls in."""
    if system_sentinel is not None:
        count = text.count(system_sentinel)
        if count > 1:
            raise fail(f"it writes the system prompt {count} times")
        text = text.replace(system_sentinel, SYSTEM)
    if SYSTEM in text and system_sentinel is None:
        raise fail("it writes a NUL character")
    pieces, rest = [], text
    for message in conv:
        sentinel = message["content"]
        if rest.count(sentinel) != 1:
            raise fail(
                f"for a {_roles(conv)} conversation the content of a {message['role']} turn "
                f"appears {rest.count(sentinel)} times after the previous turn, not once"
            )
        before, rest = rest.split(sentinel)
        pieces.append(before)
    pieces.append(rest)
    return pieces


def _system_placement(placed: Sequence[int | None], plain, before_user: Glue) -> str:
    """How the system prompt lands, from the glue it appeared in for each conversation: a
    turn of its own when the whole opening of a user turn follows it, else inside the first
    or the last user turn (Mistral's templates drop it when the last turn is an answer)."""
    if all(p is None for p in placed):
        return "dropped"
    if all(p == 0 for p in placed):
        later = [
            text
            for key, text in before_user.table
            if "first" not in before_user.facts or not key[before_user.facts.index("first")]
        ]
        opener = _common_suffix(later or before_user.values())
        first = before_user.text({"sys": True, "first": True, "last": False, "last_user": False})
        return "turn" if first.split(SYSTEM)[-1].endswith(opener) and opener else "first_user"
    last_users = [max(i for i, m in enumerate(c) if m["role"] == "user") for c in plain]
    if all(p in (None, lu) for p, lu in zip(placed, last_users, strict=True)):
        return "last_user"
    return "placed"


def _fit(rows, closings, fail) -> tuple[dict[str, Glue], dict[str, str], dict[str, Glue]]:
    """Explain every glue by the role it precedes and the fewest position facts. The text
    after a turn's content that every following glue shares (and a user turn's closing
    without the generation prompt) is that role's ``after`` text."""
    follows: dict[str, list[str]] = {"user": list(closings), "assistant": []}
    for conv, _, glue in rows:
        for j, message in enumerate(conv):
            follows[message["role"]].append(glue[j + 1])
    after = {role: _closing(_common_prefix(texts)) for role, texts in follows.items() if texts}

    before_obs: dict[str, list[tuple[dict[str, bool], str]]] = {"user": [], "assistant": []}
    end_obs: dict[str, list[tuple[dict[str, bool], str]]] = {"user": [], "assistant": []}
    for conv, sys, glue in rows:
        for j, message in enumerate(conv):
            text = glue[j] if j == 0 else glue[j][len(after[conv[j - 1]["role"]]) :]
            before_obs[message["role"]].append((turn_facts(conv, j, sys), text))
        last = conv[-1]["role"]
        end_obs[last].append((end_facts(len(conv), sys), glue[-1][len(after[last]) :]))

    before = {
        r: _explain(obs, TURN_FACTS, f"before a {r} turn", fail) for r, obs in before_obs.items()
    }
    end = {
        r: _explain(obs, END_FACTS, f"after a final {r} turn", fail)
        for r, obs in end_obs.items()
        if obs
    }
    return before, after, end


def _explain(observations, facts: Sequence[str], where: str, fail) -> Glue:
    """The smallest set of ``facts`` whose values determine the glue text."""
    for size in range(len(facts) + 1):
        for subset in itertools.combinations(facts, size):
            table: dict[tuple[bool, ...], str] = {}
            if all(
                table.setdefault(tuple(f[s] for s in subset), text) == text
                for f, text in observations
            ):
                return Glue(subset, tuple(sorted(table.items())))
    seen: dict[tuple[bool, ...], str] = {}
    for f, text in observations:
        key = tuple(f[s] for s in facts)
        if key in seen and seen[key] != text:
            position = ", ".join(f"{k}={f[k]}" for k in facts)
            raise fail(
                f"the text {where} depends on more than its position ({position} gives both "
                f"{_short(seen[key])} and {_short(text)}): numbered turns or state across turns"
            )
        seen[key] = text
    raise AssertionError("unreachable")  # the full set of facts either explains it or not


def _content_trimming(render, takes_system: bool) -> dict[str, str]:
    """Which roles' contents the template trims (``strip``, ``lstrip``, ``rstrip``), found by
    padding each content, in several positions; ``mixed`` when it depends on the position."""
    found: dict[str, set[str]] = {}
    for n in (1, 2, 3, 4):
        for sys in (False, True) if takes_system else (False,):
            conv = sentinel_conversation(n)
            if sys:
                conv = [_msg("system", _SYSTEM_SENTINEL), *conv]
            padded = [{**m, "content": _PAD + m["content"] + _PAD} for m in conv]
            try:
                text = render(padded, _ends_with_user(conv))
            except UserError:
                continue
            for m in conv:
                s = m["content"]
                if s not in text or _PAD + s + _PAD in text:
                    continue
                kind = next(
                    (
                        k
                        for k, p in (("lstrip", s + _PAD), ("rstrip", _PAD + s), ("strip", s))
                        if p in text
                    ),
                    "rewrite",
                )
                found.setdefault(m["role"], set()).add(kind)
    return {role: kinds.pop() if len(kinds) == 1 else "mixed" for role, kinds in found.items()}


def trim(text: str, kind: str | None) -> str:
    """``text`` trimmed as a template trims a role's content (``strips`` values; a trimming
    that depends on the position counts as a full strip)."""
    if kind in ("strip", "mixed", "rewrite"):
        return text.strip()
    if kind == "lstrip":
        return text.lstrip()
    if kind == "rstrip":
        return text.rstrip()
    return text


def verification_conversations(pad: str = "", turns: int = 8) -> list[list[dict[str, str]]]:
    """Multi-turn conversations with and without a system prompt, ending in either role."""
    messages = [
        _msg("user" if i % 2 == 0 else "assistant", pad + _CONTENTS[i] + pad) for i in range(turns)
    ]
    conversations = []
    for n in range(1, len(messages) + 1):
        conversations.append(messages[:n])
        conversations.append([_msg("system", pad + _SYSTEM_TEXT + pad), *messages[:n]])
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
    ending = structure.assistant_end
    found = sorted((ending.find(t), -len(t), t) for t in candidates if t in ending)
    if not found:
        raise UserError(
            f"chat template '{name}' ends an assistant turn with "
            f"{ending!r}, which holds no special token of the tokenizer: a "
            "model trained on it cannot learn to stop. Use a template from templates/ or add a "
            "sidecar .yaml naming its end_of_turn"
        )
    glue = ending + structure.assistant_to_user
    stops = [t for t in candidates if t in glue]
    return found[0][2], stops


def _common_prefix(texts: Sequence[str]) -> str:
    prefix = texts[0]
    for t in texts[1:]:
        i = 0
        while i < min(len(prefix), len(t)) and prefix[i] == t[i]:
            i += 1
        prefix = prefix[:i]
    # Never cut a date marker in two.
    if prefix.count(DATE_OPEN) > prefix.count(DATE_CLOSE):
        prefix = prefix[: prefix.rindex(DATE_OPEN)]
    return prefix


def _closing(text: str) -> str:
    """The shared text after a turn, cut back to its last line end when it runs on into the
    next line (StarCoder2's ``</s>\n\n### `` + ``Instruction``/``Response``), and never
    inside a ``<...>`` or ``[...]`` token."""
    if "\n" in text and not text.endswith("\n"):
        text = text[: text.rindex("\n") + 1]
    return snap_prefix(text)


def snap_prefix(text: str) -> str:
    """``text`` (a shared prefix) cut back so that it does not end inside a bracketed token."""
    for open_, close in (("<", ">"), ("[", "]")):
        if text.rfind(open_) > text.rfind(close):
            text = text[: text.rfind(open_)]
    return text


def snap_suffix(text: str) -> str:
    """``text`` (a shared suffix) cut so that it does not start inside a bracketed token."""
    for open_, close in (("<", ">"), ("[", "]")):
        first_close = text.find(close)
        if first_close >= 0 and (text.find(open_) < 0 or first_close < text.find(open_)):
            text = text[first_close + 1 :]
    return text


def _common_suffix(texts: Sequence[str]) -> str:
    return _common_prefix([t[::-1] for t in texts])[::-1] if texts else ""


def _ends_with_user(conversation: Sequence[Mapping[str, Any]]) -> bool:
    return bool(conversation) and conversation[-1]["role"] == "user"


def _roles(conversation: Sequence[Mapping[str, Any]]) -> str:
    return "/".join(m["role"] for m in conversation)


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _short(text: str, limit: int = 50) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 3]) + "..."
