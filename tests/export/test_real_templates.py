"""Real chat templates the project does not ship become verified Ollama TEMPLATEs, or are
refused with the reason; none becomes a wrong one.

The corpus is what `make setup` installs (llama.cpp's models/templates, Axolotl's chat
templates) and the small fixtures in tests/prompt/fixtures (families neither carries), so no
network is needed. Each TEMPLATE the runner accepts is rendered by Go's text/template (the Ollama
harness) on conversations the derivation never saw (up to ten turns, contents with tabs and
newlines, another day for templates that write the date) and compared with the Jinja output.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from runner.errors import UserError
from runner.prompt.gorender import render_ollama
from runner.prompt.gotemplate import ollama_template
from runner.prompt.structure import jinja_renderer, trim
from runner.prompt.template import ChatTemplate

pytestmark = pytest.mark.xdist_group("go")

FIXTURES = Path(__file__).resolve().parents[1] / "prompt" / "fixtures"
# The bar of the issue that asked for it: share of real templates given a verified TEMPLATE.
MIN_VERIFIED = 0.95


@functools.cache
def _corpus() -> dict[str, Path]:
    from runner.llamacpp import llama_cpp_dir

    folders = {"llama.cpp": llama_cpp_dir() / "models" / "templates", "fixtures": FIXTURES}
    spec = importlib.util.find_spec("axolotl")
    if spec and spec.origin:
        folders["axolotl"] = Path(spec.origin).parent / "utils" / "chat_templates" / "templates"
    found: dict[str, Path] = {}
    seen: set[str] = set()
    for label, folder in folders.items():
        for path in sorted(folder.glob("*.jinja")):
            text = path.read_text(encoding="utf-8")
            if text not in seen:
                seen.add(text)
                found[f"{label}/{path.name}"] = path
    return found


def tokens_for(source: str, name: str) -> tuple[str | None, str | None]:
    """The bos/eos a family's tokenizer has, told by the template's own markers."""
    if "<|start_header_id|>" in source:
        return "<|begin_of_text|>", "<|eot_id|>"
    if "<start_of_turn>" in source:
        return "<bos>", "<eos>"
    if "begin▁of▁sentence" in source or "deepseek" in name.lower():
        return "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
    if "<|im_start|>" in source:
        return None, "<|im_end|>"
    return "<s>", "</s>"


def _template(name: str, path: Path) -> ChatTemplate:
    source = path.read_text(encoding="utf-8")
    bos, eos = tokens_for(source, name)
    return ChatTemplate(
        name=name, source=source, end_of_turn="", stop=(), bos_token=bos, eos_token=eos
    )


@functools.cache
def _derive(name: str) -> Any:
    """A corpus template's OllamaTemplate, or the refusal's message."""
    corpus = _corpus()
    if name not in corpus:
        pytest.skip(f"{name} is not installed (make setup)")
    try:
        return ollama_template(_template(name, corpus[name]))
    except UserError as exc:
        return str(exc)


UNSEEN_DAY = dt.datetime(2025, 12, 31, 9, 0)
_CONTENTS = ["x", "Hello\tworld", "line1\nline2", "{{ .System }} [INST] ?", "ä", "ok", "q", "r"]


def _unseen_conversations():
    out = []
    for n in (1, 2, 3, 7, 8):
        turns = [
            {"role": "user" if i % 2 == 0 else "assistant", "content": _CONTENTS[i]}
            for i in range(n)
        ]
        out += [turns, [{"role": "system", "content": "Be\nterse."}, *turns]]
    return out


@pytest.mark.slow
def test_real_templates_become_verified_templates(go_render):
    corpus = _corpus()
    if len(corpus) < 50:
        pytest.skip("llama.cpp's templates or Axolotl's are not installed (make setup)")
    derived = {name: _derive(name) for name in corpus}
    verified = {n: d for n, d in derived.items() if not isinstance(d, str)}
    refused = {n: d for n, d in derived.items() if isinstance(d, str)}
    share = len(verified) / len(derived)
    assert share >= MIN_VERIFIED, (share, refused)
    for name, message in refused.items():
        assert message.startswith(f"chat template '{name}' cannot be turned into"), message
        assert "use" in message.lower(), message  # says what to use instead

    for name, d in verified.items():
        template = _template(name, corpus[name])
        jinja = jinja_renderer(
            template.source, template.bos_token, template.eos_token, day=UNSEEN_DAY
        )
        s = d.structure
        conversations, expected = [], []
        for conv in _unseen_conversations():
            conv = [{**m, "content": trim(m["content"], s.strips.get(m["role"]))} for m in conv]
            asked = [m for m in conv if m["role"] != "system"] if s.system == "refused" else conv
            text = jinja(asked, conv[-1]["role"] == "user")
            conversations.append(conv)
            expected.append(text[len(s.bos) :] if s.bos else text)
        got = go_render(d.text, conversations, date=UNSEEN_DAY.date().isoformat())
        assert got == expected, name
        assert [render_ollama(d.text, c, today=UNSEEN_DAY.date()) for c in conversations] == got


# The families people fine-tune every day whose templates depend on position or refuse a
# system prompt, with where the system prompt goes (own turn, folded into the first or the last
# user turn, dropped, refused).
FAMILIES = [
    ("fixtures/llama-2-chat.jinja", "first_user"),
    ("fixtures/codellama-instruct.jinja", "first_user"),
    ("fixtures/mistral-instruct-v0.1.jinja", "refused"),
    ("llama.cpp/mistralai-Mistral-Nemo-Instruct-2407.jinja", "last_user"),
    ("axolotl/mistral_v2v3.jinja", "last_user"),
    ("llama.cpp/google-gemma-2-2b-it.jinja", "refused"),
    ("axolotl/gemma3.jinja", "first_user"),
    ("fixtures/phi-3-mini.jinja", "dropped"),
    ("llama.cpp/microsoft-Phi-3.5-mini-instruct.jinja", "turn"),
    ("fixtures/starcoder2-instruct.jinja", "refused"),
    ("fixtures/magicoder.jinja", "refused"),
    ("llama.cpp/Qwen-Qwen3-0.6B.jinja", "turn"),
    ("llama.cpp/HuggingFaceTB-SmolLM3-3B.jinja", "turn"),
    ("llama.cpp/meta-llama-Llama-3.2-3B-Instruct.jinja", "turn"),
]


@pytest.mark.parametrize(("name", "system"), FAMILIES)
def test_every_listed_family_is_verified(name, system):
    found = _derive(name)
    assert not isinstance(found, str), found
    assert found.structure.system == system


def test_position_dependent_families_use_the_message_index():
    # Qwen3: the empty reasoning block opens only the final answer.
    qwen3 = _derive("llama.cpp/Qwen-Qwen3-0.6B.jinja")
    assert qwen3.form == "positional"
    assert "<|im_start|>assistant\n{{ if $last }}<think>\n\n</think>\n\n{{ end }}" in qwen3.text
    # Mistral-Nemo: the system prompt goes into the last user turn.
    nemo = _derive("llama.cpp/mistralai-Mistral-Nemo-Instruct-2407.jinja")
    assert (
        "[INST]{{ if and $last $.System }}{{ $.System }}\n\n{{ end }}{{ .Content }}[/INST]"
        in nemo.text
    )
    # Llama 3.2 writes today's date as "05 Mar 2024": cut from Ollama's currentDate.
    llama32 = _derive("llama.cpp/meta-llama-Llama-3.2-3B-Instruct.jinja")
    assert llama32.structure.dates == ("%d %b %Y",)
    assert (
        "Today Date: {{ slice currentDate 8 10 }} {{ if eq (slice currentDate 5 7) " in llama32.text
    )


def test_refusals_name_the_reason():
    tools = _derive("llama.cpp/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja")
    assert isinstance(tools, str)
    assert "it looks like a tool-use template: use the model's plain chat template" in tools
