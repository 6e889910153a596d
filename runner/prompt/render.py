"""Render a chat template exactly as ``tokenizer.apply_chat_template(..., tokenize=False)`` does.

transformers' own rendering function is used (same sandboxed Jinja environment, same globals,
same compiled-template cache), so the text a recipe trains on is the text the tokenizer saved
with the model produces. Imported lazily: transformers takes seconds to import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.errors import UserError


def render_chat_template(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    bos_token: str | None = None,
    eos_token: str | None = None,
    **special_tokens: str | None,
) -> str:
    """Render ``messages`` with the Jinja ``source``.

    Like transformers, a special token that is ``None`` is left undefined rather than passed.
    A template error (a ``raise_exception`` call, a bad role order) becomes a ``UserError``.
    """
    import jinja2
    from transformers.utils.chat_template_utils import render_jinja_template

    tokens = {"bos_token": bos_token, "eos_token": eos_token, **special_tokens}
    kwargs = {k: v for k, v in tokens.items() if v is not None}
    try:
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
