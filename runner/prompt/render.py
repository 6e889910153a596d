"""Render a chat template exactly as ``tokenizer.apply_chat_template(..., tokenize=False)`` does.

transformers' own rendering function is used (same sandboxed Jinja environment, same globals,
same compiled-template cache), so the text a recipe trains on is the text the tokenizer saved
with the model produces. Imported lazily: transformers takes seconds to import.

``recipe validate`` must stay fast, so it probes templates with ``light=True``: the same Jinja
environment built here from jinja2 alone (transformers' ``_cached_compile_jinja_template``:
``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, the ``generation`` block, its ``tojson``,
``raise_exception`` and ``strftime_now``). tests/prompt/test_render.py checks that both
render every real template of the test corpus identically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from runner.errors import UserError


def render_chat_template(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    bos_token: str | None = None,
    eos_token: str | None = None,
    strftime_now: Callable[[str], str] | None = None,
    light: bool = False,
    **special_tokens: str | None,
) -> str:
    """Render ``messages`` with the Jinja ``source``.

    Like transformers, a special token that is ``None`` is left undefined rather than passed.
    ``strftime_now`` replaces the clock a template reads (``strftime_now("%d %b %Y")``).
    A template error (a ``raise_exception`` call, a bad role order) becomes a ``UserError``.
    """
    import jinja2

    tokens = {"bos_token": bos_token, "eos_token": eos_token, **special_tokens}
    kwargs: dict[str, Any] = {k: v for k, v in tokens.items() if v is not None}
    if strftime_now is not None:
        kwargs["strftime_now"] = strftime_now
    try:
        if light:
            return _light_environment_template(source).render(
                messages=[dict(m) for m in messages],
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **kwargs,
            )
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, _ = render_jinja_template(
            conversations=[[dict(m) for m in messages]],
            chat_template=source,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
    except jinja2.TemplateError as exc:
        raise UserError(f"chat template failed to render: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # Jinja lets Python errors through, e.g. a template iterating over `tools` when None.
        raise UserError(f"chat template failed to render: {type(exc).__name__}: {exc}") from None
    return rendered[0]


@lru_cache(maxsize=64)
def _light_environment_template(source: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` renders its body (transformers tracks
        the assistant tokens it marks; rendering text does not need that)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            call = self.call_method("_render")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _render(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"chat template failed to render: {exc}") from None
