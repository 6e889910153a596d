"""The recipe's system prompt: Jinja over the example's metadata (``meta``)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from runner.errors import UserError


def render_system(text: str | None, meta: Mapping[str, Any]) -> str | None:
    """Render ``prompt.system`` with ``meta`` (e.g. ``{{ meta.version }}``); ``None`` when unset.

    A variable the example's metadata lacks is an error that names the key and lists the keys
    present, rather than an empty string in a training prompt.
    """
    if text is None:
        return None
    import jinja2

    try:
        return _compile(text).render(meta=dict(meta))
    except jinja2.UndefinedError as exc:
        present = ", ".join(sorted(map(str, meta))) or "none"
        raise UserError(
            f"prompt.system: {exc.message} (the example's metadata keys: {present})"
        ) from None
    except jinja2.TemplateError as exc:
        raise UserError(f"prompt.system: {exc}") from None


def system_variables(text: str | None) -> set[str]:
    """The names ``prompt.system`` reads (``{"meta"}`` when it depends on each example)."""
    if text is None:
        return set()
    import jinja2.meta

    env = _environment()
    try:
        return set(jinja2.meta.find_undeclared_variables(env.parse(text)))
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"prompt.system: line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=64)
def _compile(text: str):
    import jinja2

    try:
        return _environment().from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"prompt.system: line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=1)
def _environment():
    import jinja2.sandbox

    # StrictUndefined: a missing meta key fails loudly instead of rendering as "".
    return jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
