"""The Go proof: Ollama's TEMPLATE, rendered by Go's text/template exactly as Ollama fills it,
equals byte for byte the Jinja chat template rendered by transformers' ``apply_chat_template``,
and the runner's own renderer of Ollama templates (``runner.prompt.gorender``, which decides
at export time whether a TEMPLATE is trusted) renders what Go renders.

tests/go/ollama_render is a small Go program following ollama/ollama template/template.go
(``.System``, ``.Messages`` with ``.Role``/``.Content``, the legacy ``.Prompt``/``.Response``
form cut after ``{{ .Response }}``). It needs Go (Debian's golang-go, installed by .ci/run);
without it these tests are skipped, saying so.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from runner.prompt import load_template, template_names
from runner.prompt.gorender import GoTemplateError, render_ollama
from runner.prompt.gotemplate import date_expression, ollama_template
from runner.prompt.structure import verification_conversations
from runner.prompt.template import ChatTemplate
from tests.conftest import FAMILY_TOKENS

pytestmark = pytest.mark.xdist_group("go")


# --- the harness renders as Ollama does -----------------------------------------------------

OLLAMA_CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n"
)


def test_harness_messages_form_collates_like_ollama(go_render):
    conversation = [
        {"role": "system", "content": "S1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
    ]
    (out,) = go_render(OLLAMA_CHATML, [conversation])
    # Consecutive messages of one role are merged with a blank line (ollama template.collate).
    assert out == (
        "<|im_start|>system\nS1\n\nS2<|im_end|>\n<|im_start|>user\na\n\nb<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    (system,) = go_render(
        "{{ .System }}|{{ range .Messages }}{{ .Role }},{{ end }}", [conversation]
    )
    assert system == "S1\n\nS2|system,user,"


def test_harness_legacy_form_cuts_after_response(go_render):
    template = "{{ if .System }}S:{{ .System }} {{ end }}U:{{ .Prompt }} A:{{ .Response }} END "
    conversation = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    (out,) = go_render(template, [conversation], legacy=True)
    assert out == "S:sys U:u1 A:a1 END U:u2 A:"
    # A template naming neither .Messages nor .Response gets {{ .Response }} appended.
    (plain,) = go_render("[{{ .Prompt }}]", [conversation[1:]])
    assert plain == "[u1]a1[u2]"


# --- the runner's renderer is Go's ---------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "héllo ✓"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "u"}],
    [
        {"role": "system", "content": "S1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "u1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": " a1\n"},
        {"role": "user", "content": ""},
    ],
]

CONSTRUCTS = [
    # trim markers eat white space on their side only
    "A \n {{- .System -}} \n B{{ range .Messages }} [{{- .Role }}] {{ end }}",
    # a variable declared in a block dies at its end; an assignment reaches the outer one
    '{{ $x := "out" }}{{ if true }}{{ $x := "in" }}{{ $x }}{{ end }}{{ $x }}'
    "{{ range .Messages }}{{ $x = .Role }}{{ end }}{{ $x }}",
    # the index, len counting bytes, slice, index, printf, print
    "{{ range $i, $m := .Messages }}{{ $i }}:{{ len $m.Content }}:"
    "{{ eq (len (slice $.Messages $i)) 1 }};{{ end }}{{ (index .Messages 0).Role }}"
    '{{ printf "%s|%d|%%" .System 7 }}{{ print 1 2 "x" 3 }}',
    # and/or give an operand and stop early; eq with several values; not; ne; lt
    '{{ and .System "yes" }}|{{ or "" .System "none" }}|{{ and 0 .Nothing.Field }}'
    '|{{ eq "b" "a" "b" }}|{{ not .Messages }}|{{ ne 1 2 }}|{{ lt 1 2 }}',
    # break, continue, range else, with, else if chains, comments, missing keys
    '{{ range .Messages }}{{ if eq .Role "system" }}{{ continue }}{{ end }}{{ .Role }}'
    '{{ if eq .Content "u2" }}{{ break }}{{ end }},{{ else }}empty{{ end }}'
    "{{ with .System }}[{{ . }}]{{ else }}no system{{ end }}{{/* a comment */}}"
    '{{ if eq .System "X" }}x{{ else if .System }}s{{ else }}-{{ end }}{{ .Missing }}',
    # raw strings and escapes in Go strings
    '{{ "tab\\there \\u00e9 \\"q\\"" }}{{ `raw\\n` }}{{ range .Messages }}{{ end }}',
    # Ollama's currentDate
    "{{ currentDate }} {{ slice currentDate 5 7 }}{{ range .Messages }}{{ end }}",
]


@pytest.mark.parametrize("template", CONSTRUCTS)
def test_gorender_renders_like_go(template, go_render):
    day = dt.date(2024, 3, 5)
    expected = go_render(template, CONVERSATIONS, date=day.isoformat(), errors=True)
    got = []
    for conversation in CONVERSATIONS:
        try:
            got.append(render_ollama(template, conversation, today=day))
        except GoTemplateError:
            got.append("error")
    assert got == ["error" if e.startswith("error: ") else e for e in expected]


@pytest.mark.parametrize(
    "template",
    ["{{ .Messages.Role }}", '{{ eq 1 "a" }}', "{{ if .System }}", "{{ nosuchfunc 1 }}"],
)
def test_gorender_refuses_what_go_refuses(template, go_render):
    [expected] = go_render(template, CONVERSATIONS[:1], errors=True)
    assert expected.startswith("error: ")
    with pytest.raises(GoTemplateError):
        render_ollama(template, CONVERSATIONS[0])


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%d %b %Y", "%B %-d, %y", "%m/%d/%Y"])
def test_dates_are_cut_from_current_date(fmt, go_render):
    """A template that writes today's date in another format gets it from Ollama's
    currentDate: right on every day of a leap year."""
    text = "".join(date_expression(fmt))
    conversation = [{"role": "user", "content": "x"}]
    day = dt.date(2024, 1, 1)
    while day.year == 2024:
        if day.day in (1, 9, 10, 29, 31):
            [got] = go_render(
                text + "{{ range .Messages }}{{ end }}", [conversation], date=day.isoformat()
            )
            assert got == day.strftime(fmt), day
        day += dt.timedelta(days=1)
    assert date_expression("%A %H:%M") is None  # a weekday or a time: refused


# --- generated TEMPLATEs equal the Jinja templates ------------------------------------------


def _expected(tokenizer, conversation, bos: str) -> str:
    text = tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=conversation[-1]["role"] == "user"
    )
    if bos:
        assert text.startswith(bos)
        return text[len(bos) :]
    return text


def _check(template: ChatTemplate, tokens, go_render, make_tokenizer, conversations=None):
    tokenizer = make_tokenizer(template.source, **tokens)
    derived = ollama_template(template, runtime_adds_bos=True)
    bos = derived.structure.bos
    conversations = conversations or verification_conversations()
    assert {"system"} <= {c[0]["role"] for c in conversations}
    assert {"user", "assistant"} == {c[-1]["role"] for c in conversations}
    expected = [_expected(tokenizer, c, bos) for c in conversations]
    rendered = go_render(derived.text, conversations)
    assert rendered == expected
    # The runner's renderer, which accepted the TEMPLATE, renders what Go renders.
    assert [render_ollama(derived.text, c) for c in conversations] == rendered
    assert ".Prompt" not in derived.text  # the .Messages form only (Ollama 0.2 and later)
    return derived


SHIPPED_FORMS = {
    "alpaca": "role-chain",
    "chatml": "role-tagged",
    "deepseek-coder": "role-chain",
    "llama2": "positional",
    "zephyr": "role-tagged",
}


@pytest.mark.parametrize("name", template_names())
@pytest.mark.parametrize("family", sorted(FAMILY_TOKENS))
def test_shipped_templates_render_identically_in_ollama(name, family, go_render, make_tokenizer):
    tokens = FAMILY_TOKENS[family]
    template = load_template(name, **tokens)
    derived = _check(template, tokens, go_render, make_tokenizer)
    assert not derived.structure.strips_content
    # The short form a person would write: ChatML and Zephyr as one tagged turn, Alpaca and
    # DeepSeek-Coder one branch per role, Llama 2 with <<SYS>> in the first turn.
    assert derived.form == SHIPPED_FORMS[name]
    assert derived.structure.system == ("first_user" if name == "llama2" else "turn")


def test_readable_forms_are_the_ones_a_person_writes():
    chatml = ollama_template(load_template("chatml", **FAMILY_TOKENS["qwen2"])).text
    assert chatml == (
        "{{- range $i, $_ := .Messages }}\n"
        "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
        "<|im_start|>{{ .Role }}\n"
        "{{ .Content }}<|im_end|>\n"
        '{{ if and $last (eq .Role "user") -}}\n'
        "<|im_start|>assistant\n"
        "{{ end }}\n"
        "{{- end }}"
    )
    llama2 = ollama_template(load_template("llama2", **FAMILY_TOKENS["llama"])).text
    assert (
        '{{- if eq .Role "user" }}{{ if not $first }}<s>{{ end }}[INST] '
        "{{ if and $first $.System }}<<SYS>>\n{{ $.System }}\n<</SYS>>\n\n{{ end }}"
        "{{ .Content }} [/INST]"
    ) in llama2


def _llama_cpp_template(filename: str) -> str:
    from runner.llamacpp import llama_cpp_dir

    path = llama_cpp_dir() / "models" / "templates" / filename
    if not path.is_file():
        pytest.skip(f"llama.cpp's {filename} is not installed (make setup)")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("filename", "family", "strips"),
    [
        ("Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", False),  # the tiny:qwen2 family's own
        ("microsoft-Phi-3.5-mini-instruct.jinja", "llama", False),
        ("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama", True),
    ],
)
def test_real_family_templates(filename, family, strips, go_render, make_tokenizer):
    tokens = FAMILY_TOKENS[family]
    template = ChatTemplate(
        name=filename, source=_llama_cpp_template(filename), end_of_turn="", stop=(), **tokens
    )
    conversations = verification_conversations()
    derived = _check(template, tokens, go_render, make_tokenizer, conversations)
    assert derived.structure.strips_content is strips
    if strips:
        assert any("trims whitespace" in n for n in derived.notes)


def test_modelfile_template_is_the_checked_one(go_render, make_tokenizer, tmp_path):
    """The TEMPLATE written into a Modelfile, read back as Ollama's parser does, renders the
    training text."""
    from runner.export.ollama import render_modelfile
    from tests.helpers import recipe_of

    exports = [
        {"type": "merge"},
        {"type": "gguf"},
        {"type": "ollama", "model": "zig:1"},
    ]
    recipe = recipe_of({"name": "zig", "train": {"seq_len": 512}, "export": exports}, tmp_path)
    tokens = FAMILY_TOKENS["qwen2"]
    template = load_template(recipe.prompt.template, **tokens)
    target = recipe.exports("ollama")[0]
    text = render_modelfile(
        recipe, template, "../gguf/zig-q4_k_m.gguf", target=target, model="zig:1"
    )
    (go_template,) = re.findall(r'^TEMPLATE """(.*?)"""$', text, flags=re.S | re.M)
    tokenizer = make_tokenizer(template.source, **tokens)
    conversations = verification_conversations()
    assert go_render(go_template, conversations) == [
        _expected(tokenizer, c, "") for c in conversations
    ]


# --- the {{ .Suffix }} branch of fill-in-the-middle models ------------------------------------

INFILL = [
    ("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"),
    ('const s = "{{ not a template }}";\n', "\n}\n"),
]


@pytest.mark.parametrize("mode", ["psm", "spm"])
@pytest.mark.parametrize("family", ["deepseek-coder", "qwen2.5-coder", "starcoder", "codellama"])
def test_suffix_branch_renders_the_trained_infill_format(family, mode, go_render, make_tokenizer):
    """An Ollama request with a suffix renders exactly the infill prompt of training; every
    chat request renders as before."""
    from runner.prompt.fim import FAMILIES, ollama_suffix_branch

    fim = next(f for f in FAMILIES if f.family == family).with_mode(mode)
    tokens = FAMILY_TOKENS["deepseek-coder"]
    template = load_template("deepseek-coder", **tokens)
    derived = ollama_template(template, runtime_adds_bos=True)
    text = ollama_suffix_branch(fim, derived.text)
    cases = [{"prompt": before, "suffix": after} for before, after in INFILL]
    assert go_render(text, cases) == [fim.prompt(before, after) for before, after in INFILL]
    conversations = verification_conversations()
    assert go_render(text, conversations) == go_render(derived.text, conversations)


def test_modelfile_suffix_branch_writes_the_training_rows(go_render, tmp_path):
    """The TEMPLATE of a Modelfile, read back as Ollama's parser does, turns the prefix and
    suffix of a real fill_in_middle training row into that row's prompt."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer

    from runner.data.example import Example
    from runner.data.registries import EXTRACTORS, load_all
    from runner.data.tokenizer import TokenCounter
    from runner.export.ollama import render_modelfile
    from runner.models.tiny import tiny_spec, tokenizer_dir
    from tests.helpers import recipe_of

    load_all()
    tokenizer = tokenizer_dir(tiny_spec("tiny:deepseek-coder")) / "tokenizer.json"
    counter = TokenCounter(Tokenizer.from_file(str(tokenizer)))
    cls = EXTRACTORS.get("fill_in_middle")
    extractor = cls(
        cls.Options(type="fill_in_middle", rate=1.0), SimpleNamespace(max_unit_tokens=256), counter
    )
    code = "def add(a, b):\n    total = a + b\n    return total\n\n\nprint(add(1, 2))\n"
    doc = Example("d", "s", text=code, metadata={"language": "python", "path": "a.py"})
    (row,) = list(extractor.extract(doc))
    exports = [{"type": "merge"}, {"type": "gguf"}, {"type": "ollama", "model": "fim:1"}]
    recipe = recipe_of(
        {"name": "fim", "model": {"base": "tiny:deepseek-coder"}, "export": exports}, tmp_path
    )
    tokens = FAMILY_TOKENS["deepseek-coder"]
    template = load_template("deepseek-coder", **tokens)
    text = render_modelfile(
        recipe,
        template,
        "../gguf/fim-q4_k_m.gguf",
        target=recipe.exports("ollama")[0],
        model="fim:1",
        fim=extractor.fim,
    )
    (go_template,) = re.findall(r'^TEMPLATE """(.*?)"""$', text, flags=re.S | re.M)
    before, after = extractor.fim.split_prompt(row.messages[0]["content"])
    assert go_render(go_template, [{"prompt": before, "suffix": after}]) == [
        row.messages[0]["content"]
    ]
