"""The chat template of a recipe: one Jinja text that drives training data, tokenizer, GGUF and Ollama.

A template is a Hugging Face ``chat_template`` (Jinja over ``messages``, ``add_generation_prompt``,
``bos_token``, ``eos_token``). Templates shipped in ``templates/`` carry a YAML sidecar naming the
string that ends an assistant turn (it must be trained, or the model never stops:
axolotl-ai-cloud/axolotl#1608) and every stop string for inference (ggml-org/llama.cpp#9606).

Only light imports here: ``recipe validate`` loads templates; rendering imports transformers lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import Any, Literal

import yaml

from runner.errors import UserError
from runner.recipe.fields import Section, TemplateRef
from runner.registry import did_you_mean

# templates/ at the repository root, next to the runner package.
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

# prompt.template value meaning "the base tokenizer's own chat_template".
TOKENIZER = "tokenizer"

_BOS = "{{ bos_token }}"
_EOS = "{{ eos_token }}"


class PromptSection(Section):
    """`prompt:`: the chat template that drives training data, tokenizer, GGUF and Ollama
    alike."""

    template: TemplateRef = "chatml"
    """A template name from templates/ (chatml, llama2, alpaca, deepseek-coder, zephyr),
    `tokenizer` for the base tokenizer's own, or a path to a .jinja file."""
    system: str | None = None
    """System prompt; Jinja with `meta` (the example's metadata)."""
    system_fallback: Literal["fold", "drop"] | None = None
    """For a template that takes no system message (Gemma, Mistral v0.1, StarCoder2 refuse
    one; Phi-3 drops it): `fold` puts the system prompt at the start of the first user turn,
    followed by a blank line (as Gemma 3's own template does); `drop` trains and serves without
    it. The template is changed accordingly, so training, the GGUF and Ollama agree."""
    train_on: Literal["assistant", "last_assistant", "all"] = "assistant"
    """Which turns carry loss."""


@dataclass(frozen=True)
class ChatTemplate:
    """A loaded chat template and the strings that end its turns.

    ``end_of_turn`` closes every assistant turn and must carry loss in training; ``stop`` holds
    every string that should end generation at inference (``end_of_turn``, the template's own
    stops and ``eos_token``). ``bos_token``/``eos_token`` are the values the template is rendered
    with: the tokenizer's when one was given, otherwise the sidecar's defaults.
    """

    name: str
    source: str
    end_of_turn: str
    stop: tuple[str, ...]
    bos_token: str | None = None
    eos_token: str | None = None
    path: Path | None = None
    description: str = ""

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = False,
        bos_token: str | None | EllipsisType = ...,
        eos_token: str | None | EllipsisType = ...,
    ) -> str:
        """Render ``messages`` exactly as ``tokenizer.apply_chat_template(..., tokenize=False)``.

        ``bos_token``/``eos_token`` default to the template's; ``None`` leaves the variable
        undefined, as transformers does for a tokenizer without that token.
        """
        from runner.prompt.render import render_chat_template

        return render_chat_template(
            self.source,
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token if bos_token is ... else bos_token,
            eos_token=self.eos_token if eos_token is ... else eos_token,
        )


TEMPLATE_ARTIFACT = "template.json"


def save_template(template: ChatTemplate, folder: Path) -> Path:
    """Write the resolved template (source, end of turn, stops, bos/eos) where later stages find
    it: the one template that drove training drives the GGUF, the Modelfile and the checks."""
    path = folder / TEMPLATE_ARTIFACT
    data = {
        "name": template.name,
        "source": template.source,
        "end_of_turn": template.end_of_turn,
        "stop": list(template.stop),
        "bos_token": template.bos_token,
        "eos_token": template.eos_token,
        "description": template.description,
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_template(folder: Path) -> ChatTemplate:
    """The template the train stage used, from its ``template.json``."""
    data = _read_json(folder / TEMPLATE_ARTIFACT)
    try:
        return ChatTemplate(
            name=str(data["name"]),
            source=str(data["source"]),
            end_of_turn=str(data["end_of_turn"]),
            stop=tuple(data["stop"]),
            bos_token=data.get("bos_token"),
            eos_token=data.get("eos_token"),
            description=str(data.get("description", "")),
        )
    except (KeyError, TypeError) as exc:
        raise UserError(
            f"{folder / TEMPLATE_ARTIFACT}: incomplete template artifact ({exc})"
        ) from None


def template_names() -> list[str]:
    """Names of the templates shipped in ``templates/`` (each a ``.jinja`` with a ``.yaml``)."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.jinja"))


def load_template(
    choice: str,
    tokenizer_dir: Path | None = None,
    *,
    bos_token: str | None | EllipsisType = ...,
    eos_token: str | None | EllipsisType = ...,
    system_fallback: str | None = None,
) -> ChatTemplate:
    """Load ``prompt.template``: a name from ``templates/``, ``tokenizer``, or a ``.jinja`` path.

    With ``tokenizer_dir`` (a saved Hugging Face tokenizer), ``bos_token``/``eos_token`` come from
    it, and ``tokenizer`` reads its ``chat_template``. Explicit ``bos_token``/``eos_token``
    arguments win over both (e.g. the tokens a GGUF file declares). A template without a sidecar
    needs ``tokenizer_dir``: its end-of-turn token is found among the tokenizer's special tokens.
    The train stage loads it once and saves it (``save_template``); every later stage reads that
    artifact (``read_template``) instead of deriving it again. ``system_fallback`` (``fold`` or
    ``drop``) rewrites a template that takes no system message (``with_system_fallback``).
    """
    tokens = read_special_tokens(tokenizer_dir) if tokenizer_dir is not None else None

    if choice == TOKENIZER:
        if tokenizer_dir is None:
            raise UserError(
                "prompt.template: 'tokenizer' uses the base tokenizer's own chat_template, "
                "but no tokenizer folder is available yet"
            )
        name, source, path, spec = TOKENIZER, read_tokenizer_template(tokenizer_dir), None, None
    elif choice.endswith(".jinja") or "/" in choice:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise UserError(f"prompt.template: no such template file: {path}")
        name, source = path.stem, path.read_text(encoding="utf-8")
        sidecar = path.with_suffix(".yaml")
        spec = _read_sidecar(sidecar) if sidecar.is_file() else None
    else:
        known = template_names()
        if choice not in known:
            raise UserError(
                f"prompt.template: '{choice}' is not a known template{did_you_mean(choice, known)} "
                f"(known: {', '.join(known)}, or 'tokenizer', or a path to a .jinja file)"
            )
        path = TEMPLATES_DIR / f"{choice}.jinja"
        name, source = choice, path.read_text(encoding="utf-8")
        spec = _read_sidecar(path.with_suffix(".yaml"))

    defaults = spec or {}
    bos = _pick(bos_token, tokens, "bos_token", defaults)
    eos = _pick(eos_token, tokens, "eos_token", defaults)
    if spec is not None:
        end_of_turn = _resolve(spec["end_of_turn"], bos, eos, spec["_file"])
        stops = [_resolve(s, bos, eos, spec["_file"]) for s in spec.get("stop", [])]
        description = str(spec.get("description", ""))
    else:
        if tokens is None:
            raise UserError(
                f"prompt.template: {choice} has no sidecar {Path(choice).with_suffix('.yaml').name} "
                "naming its end-of-turn string, and no tokenizer is available to find it"
            )
        from runner.prompt.structure import find_end_of_turn

        end_of_turn, stops = find_end_of_turn(source, bos, eos, tokens["special"], name)
        description = ""
    stop = _unique([end_of_turn, *stops, *([eos] if eos else [])])
    if system_fallback is not None:
        source = with_system_fallback(source, system_fallback, bos, eos)
    return ChatTemplate(
        name=name,
        source=source,
        end_of_turn=end_of_turn,
        stop=tuple(stop),
        bos_token=bos,
        eos_token=eos,
        path=path,
        description=description,
    )


def system_support(
    source: str, bos_token: str | None = None, eos_token: str | None = None
) -> tuple[str, str | None]:
    """How a template treats a system message: ``takes``, ``dropped`` (rendered nowhere) or
    ``refused`` (it raises), with the template's own message. Renders once, without
    transformers (``recipe validate`` asks)."""
    from runner.prompt.render import render_chat_template

    sentinel = "\u27e6SYSTEM\u27e7"
    messages = [{"role": "system", "content": sentinel}, {"role": "user", "content": "hi"}]
    try:
        text = render_chat_template(
            source,
            messages,
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
            light=True,
        )
    except UserError as exc:
        return "refused", str(exc).removeprefix("chat template failed to render: ")
    return ("takes", None) if sentinel in text else ("dropped", None)


# Prepended to a template that takes no system message (Jinja ``set`` at the top level
# replaces ``messages`` for the whole template; lists and dicts are built, never mutated).
_FOLD = """{#- recipe-runner, prompt.system_fallback: fold. The system prompt opens the first user turn. -#}
{%- if messages and messages[0]['role'] == 'system' %}
    {%- if messages | length > 1 and messages[1]['role'] == 'user' %}
        {%- set messages = [{'role': 'user', 'content': messages[0]['content'] + '\n\n' + messages[1]['content']}] + messages[2:] %}
    {%- else %}
        {%- set messages = messages[1:] %}
    {%- endif %}
{%- endif %}
"""
_DROP = """{#- recipe-runner, prompt.system_fallback: drop. The system prompt is left out. -#}
{%- if messages and messages[0]['role'] == 'system' %}
    {%- set messages = messages[1:] %}
{%- endif %}
"""


def with_system_fallback(
    source: str, mode: str, bos_token: str | None = None, eos_token: str | None = None
) -> str:
    """``source`` made to take a leading system message by folding it into the first user
    turn (``fold``) or leaving it out (``drop``); unchanged when it takes one already."""
    if mode not in ("fold", "drop"):
        raise UserError(f"prompt.system_fallback: '{mode}' is not fold or drop")
    if (
        source.startswith((_FOLD, _DROP))
        or system_support(source, bos_token, eos_token)[0] == "takes"
    ):
        return source
    return (_FOLD if mode == "fold" else _DROP) + source


def read_tokenizer_template(tokenizer_dir: Path) -> str:
    """The ``chat_template`` a saved tokenizer carries (``chat_template.jinja`` or its config)."""
    jinja = tokenizer_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = _read_json(tokenizer_dir / "tokenizer_config.json")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        by_name = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
        template = by_name.get("default")
    if not isinstance(template, str) or not template:
        raise UserError(
            f"prompt.template: 'tokenizer', but the tokenizer in {tokenizer_dir} has no "
            "chat_template; name a template from templates/ instead"
        )
    return template


def read_special_tokens(tokenizer_dir: Path) -> dict[str, Any]:
    """bos/eos and every special token string of a saved tokenizer, read from its JSON files."""
    config = _read_json(tokenizer_dir / "tokenizer_config.json")
    special_map = _read_json(tokenizer_dir / "special_tokens_map.json", missing_ok=True)

    def token(key: str) -> str | None:
        value = config.get(key, special_map.get(key))
        if isinstance(value, Mapping):
            value = value.get("content")
        return value if isinstance(value, str) else None

    special = [
        entry["content"]
        for entry in config.get("added_tokens_decoder", {}).values()
        if isinstance(entry, Mapping) and entry.get("special") and entry.get("content")
    ]
    bos, eos = token("bos_token"), token("eos_token")
    special.extend(t for t in (bos, eos) if t)
    return {"bos_token": bos, "eos_token": eos, "special": tuple(_unique(special))}


def _pick(explicit: Any, tokens: Mapping[str, Any] | None, key: str, defaults: Mapping) -> Any:
    if explicit is not ...:
        return explicit
    if tokens is not None:
        return tokens[key]
    return defaults.get(key)


def _resolve(value: str, bos: str | None, eos: str | None, where: Path) -> str:
    """Replace the ``{{ bos_token }}``/``{{ eos_token }}`` placeholders of a sidecar string."""
    for placeholder, token in ((_BOS, bos), (_EOS, eos)):
        if placeholder in value:
            if not token:
                raise UserError(f"{where}: '{value}' needs a {placeholder[3:-3]}, which is unset")
            value = value.replace(placeholder, token)
    return value


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"template sidecar missing: {path}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("end_of_turn"), str):
        raise UserError(f"{path}: needs `end_of_turn: <string that ends an assistant turn>`")
    stop = spec.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise UserError(f"{path}: `stop` must be a list of non-empty strings")
    spec["_file"] = path
    return spec


def _read_json(path: Path, missing_ok: bool = False) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise UserError(f"no tokenizer file {path}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))
