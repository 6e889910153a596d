"""prompt.system: Jinja over the example's metadata."""

from __future__ import annotations

import pytest

from runner.errors import UserError
from runner.prompt import render_system, system_variables


def test_system_renders_meta():
    prompt = "You are a Zig expert for version {{ meta.version }}."
    assert (
        render_system(prompt, {"version": "0.15.0"}) == "You are a Zig expert for version 0.15.0."
    )
    assert system_variables(prompt) == {"meta"}


def test_missing_meta_key_names_it():
    prompt = "Zig {{ meta.version }} on {{ meta.os }}"
    with pytest.raises(UserError) as err:
        render_system(prompt, {"version": "0.15.0", "topic": "errors"})
    message = str(err.value)
    assert message.startswith("prompt.system:")
    assert "'os'" in message
    assert "metadata keys: topic, version" in message


def test_no_system_prompt():
    assert render_system(None, {"version": "1"}) is None
    assert system_variables(None) == set()


def test_plain_system_prompt_has_no_variables():
    prompt = "You are terse.\n"
    assert system_variables(prompt) == set()
    assert render_system(prompt, {}) == "You are terse.\n"


def test_syntax_error_is_a_user_error():
    with pytest.raises(UserError, match="prompt.system: line 1"):
        render_system("{{ meta.version ", {})
