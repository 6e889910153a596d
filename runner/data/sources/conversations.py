"""`type: conversations`: chat logs (Meton session files, OpenAI `messages`, ShareGPT)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from runner.data.example import Example, stable_id
from runner.data.outcome import Rejection, bad_input
from runner.data.registries import SOURCES
from runner.data.sources.base import JsonRecordSource, SourceOptions

# Role names seen in the wild -> canonical roles. `drop` removes the message (tool output is
# not something the assistant should learn to write); the recipe's `roles` overrides these.
DEFAULT_ROLES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "tool": "drop",
    "function": "drop",
    "observation": "drop",
}

# Top-level scalar fields of a Meton session file carried into the example metadata.
METON_FIELDS = ("session_id", "start_time", "end_time", "message_count")


def detect_layout(record: dict[str, Any]) -> str | None:
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if isinstance(record.get("messages"), list):
        return "meton" if "session_id" in record else "openai"
    return None


@SOURCES.register
class ConversationsSource(JsonRecordSource):
    """Each conversation (a file, a list item or a JSONL line) becomes one chat example.

    Roles are mapped to system/user/assistant (or dropped); ``system_messages`` keeps, drops
    or replaces (with the rendered ``prompt.system``) the log's system messages; trailing turns after the
    last assistant message are cut (counted), and conversations with fewer than ``min_turns``
    assistant turns are rejected with a reason.
    """

    suffixes = (".json", ".jsonl")

    class Options(SourceOptions):
        """Chat logs: Meton conversation files, OpenAI `messages`, ShareGPT `conversations`."""

        type: Literal["conversations"]
        format: Literal["auto", "meton", "openai", "sharegpt"] = "auto"
        """Layout of the logs."""
        roles: dict[str, Literal["system", "user", "assistant", "drop"]] = {}
        """Map log role names to system/user/assistant (or drop the message)."""
        system_messages: Literal["keep", "drop", "replace"] = "keep"
        """What to do with system messages in the logs."""
        min_turns: int = Field(1, ge=1)
        """Conversations with fewer assistant turns are rejected with a reason."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.format = options.format
        self.roles = {**DEFAULT_ROLES, **options.roles}
        self.system_messages = options.system_messages
        self.min_turns = options.min_turns

    def convert(self, record: Any, shown: str, line: int) -> Example | Rejection:
        if isinstance(record, list):  # a bare list of messages
            record = {"messages": record}
        if not isinstance(record, dict):
            return self.not_an_object(record, shown, line)
        layout = detect_layout(record) if self.format == "auto" else self.format
        key = "conversations" if layout == "sharegpt" else "messages"
        raw_messages = record.get(key)
        if layout is None or not isinstance(raw_messages, list):
            return bad_input(
                self.stage, "missing field", f"no '{key}' list", shown, line, raw=record
            )
        messages: list[dict[str, str]] = []
        for index, message in enumerate(raw_messages):
            if not isinstance(message, dict):
                return bad_input(
                    self.stage,
                    "malformed message",
                    f"message {index} is not an object",
                    shown,
                    line,
                    raw=record,
                )
            role_key, text_key = ("from", "value") if layout == "sharegpt" else ("role", "content")
            role, content = message.get(role_key), message.get(text_key)
            if not isinstance(role, str) or not isinstance(content, str):
                return bad_input(
                    self.stage,
                    "missing field",
                    f"message {index} lacks '{role_key}' or '{text_key}' text",
                    shown,
                    line,
                    raw=record,
                )
            mapped = self.roles.get(role)
            if mapped is None:
                return bad_input(
                    self.stage,
                    "unknown role",
                    f"message {index} has role '{role}'; map it under `roles:`",
                    shown,
                    line,
                    raw=record,
                )
            if mapped == "drop" or (mapped == "system" and self.system_messages != "keep"):
                continue
            messages.append({"role": mapped, "content": content})
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()
        turns = sum(1 for m in messages if m["role"] == "assistant")
        if turns < self.min_turns:
            reason = "no assistant turn" if turns == 0 else "fewer than min_turns"
            return bad_input(
                self.stage,
                reason,
                f"{turns} assistant turn(s), min_turns is {self.min_turns}",
                shown,
                line,
                raw=record,
            )
        meta = self.base_metadata(shown, line)
        if layout == "meton":
            meta.update({k: record[k] for k in METON_FIELDS if k in record})
        if isinstance(record.get("metadata"), dict):
            meta.update(record["metadata"])
        if self.system_messages == "drop":
            # `drop`: the example trains with no system prompt at all, not even prompt.system.
            meta["system_prompt"] = "none"
        return Example(
            id=stable_id(self.name, shown, line, messages),
            source=self.name,
            messages=messages,
            metadata=meta,
        )
