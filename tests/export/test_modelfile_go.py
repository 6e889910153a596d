"""The Go proof: Ollama's TEMPLATE, rendered by Go's text/template exactly as Ollama fills it,
equals byte for byte the Jinja chat template rendered by transformers' ``apply_chat_template``.

tests/go/ollama_render is a small Go program following ollama/ollama template/template.go
(``.System``, ``.Messages`` with ``.Role``/``.Content``, the legacy ``.Prompt``/``.Response``
form cut after ``{{ .Response }}``). It needs Go (Debian's golang-go, installed by .ci/run);
without it these tests are skipped, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.prompt import load_template, template_names
from runner.prompt.gotemplate import ollama_template
from runner.prompt.structure import verification_conversations
from runner.prompt.template import ChatTemplate
from tests.conftest import FAMILY_TOKENS

HARNESS = Path(__file__).resolve().parents[1] / "go" / "ollama_render"

pytestmark = pytest.mark.xdist_group("go")


@pytest.fixture(scope="session")
def go_render():
    """``render(template_text, conversations, legacy=False) -> [str]`` through the Go harness,
    built once per source hash and Go version into the runner's cache."""
    go = shutil.which("go")
    if go is None:
        pytest.skip(
            "Go is not installed (apt-get install golang-go): Ollama's TEMPLATE cannot be rendered"
        )
    from runner.models.cache import build_once, cache_root

    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256(version.encode())
    for name in ("go.mod", "main.go"):
        digest.update((HARNESS / name).read_bytes())
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOCACHE": str(cache_root() / "go-build")}
    env.setdefault("HOME", str(cache_root()))

    def build(tmp: Path) -> None:
        subprocess.run(
            [go, "build", "-o", str(tmp / "ollama_render"), "."],
            cwd=HARNESS,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )

    binary = build_once("go", "ollama_render", digest.hexdigest(), build) / "ollama_render"

    def render(template: str, conversations, legacy: bool = False) -> list[str]:
        # A case is a conversation, or a dict such as {"prompt", "suffix"} (an infill request).
        request = {
            "template": template,
            "cases": [
                c if isinstance(c, dict) else {"messages": list(c), "legacy": legacy}
                for c in conversations
            ],
        }
        done = subprocess.run(
            [str(binary)], input=json.dumps(request), capture_output=True, text=True, check=True
        )
        results = json.loads(done.stdout)["results"]
        errors = [r["error"] for r in results if "error" in r]
        assert not errors, errors
        return [r["output"] for r in results]

    return render


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
    assert go_render(derived.text, conversations) == expected
    if ".Prompt" in derived.text:
        # Legacy executions end at the generation prompt: conversations ending with a user turn.
        asking = [
            (c, e) for c, e in zip(conversations, expected, strict=True) if c[-1]["role"] == "user"
        ]
        got = go_render(derived.text, [c for c, _ in asking], legacy=True)
        assert got == [e for _, e in asking]
    return derived


@pytest.mark.parametrize("name", template_names())
@pytest.mark.parametrize("family", sorted(FAMILY_TOKENS))
def test_shipped_templates_render_identically_in_ollama(name, family, go_render, make_tokenizer):
    tokens = FAMILY_TOKENS[family]
    template = load_template(name, **tokens)
    derived = _check(template, tokens, go_render, make_tokenizer)
    assert not derived.structure.strips_content
    assert (".Prompt" in derived.text) == (name != "llama2"), derived.notes


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
        assert any("strips whitespace" in n for n in derived.notes)


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
