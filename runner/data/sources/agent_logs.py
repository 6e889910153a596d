"""`type: agent_logs`: JSONL logs of an agent (``datasets/agent-logs/success_memory.jsonl``) as
chat pairs."""

from __future__ import annotations

from typing import Any, Literal

from runner.data.example import Example, stable_id
from runner.data.outcome import Rejection, bad_input
from runner.data.reading import copy_metadata
from runner.data.registries import SOURCES
from runner.data.sources.base import FieldTemplate, JsonRecordSource, SourceOptions


@SOURCES.register
class AgentLogsSource(JsonRecordSource):
    """Each log entry is rendered through the ``prompt`` and ``response`` Jinja templates into a
    user and an assistant turn. Entries missing a ``require_fields`` field, or a field a
    template uses, are rejected with file and line."""

    suffixes = (".jsonl", ".json")

    class Options(SourceOptions):
        """JSONL agent logs mapped to prompt/response pairs by templates."""

        type: Literal["agent_logs"]
        prompt: str = "{{ spec_issue_description }}"
        """Jinja template of the user turn, over the log entry's fields."""
        response: str = "{{ successful_diff_summary }}"
        """Jinja template of the assistant turn."""
        require_fields: tuple[str, ...] = ()
        """Entries missing any of these fields are rejected with a reason."""
        metadata_fields: tuple[str, ...] = ()
        """Fields copied into the example metadata (dotted paths)."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.prompt = FieldTemplate(options.prompt)
        self.response = FieldTemplate(options.response)
        self.require = list(options.require_fields)
        self.metadata_fields = list(options.metadata_fields)

    def convert(self, entry: Any, shown: str, line: int) -> Example | Rejection:
        if not isinstance(entry, dict):
            return self.not_an_object(entry, shown, line)
        for name in self.require:
            if entry.get(name) in (None, "", []):
                return bad_input(
                    self.stage, "missing field", f"no '{name}' field", shown, line, raw=entry
                )
        try:
            prompt = self.prompt.render(entry).strip()
            response = self.response.render(entry).strip()
        except KeyError as exc:
            return bad_input(
                self.stage, "missing field", f"no '{exc.args[0]}' field", shown, line, raw=entry
            )
        except ValueError as exc:
            return bad_input(self.stage, "template error", str(exc), shown, line, raw=entry)
        if not prompt or not response:
            which = "prompt" if not prompt else "response"
            return bad_input(
                self.stage,
                "empty turn",
                f"the {which} template rendered empty",
                shown,
                line,
                raw=entry,
            )
        meta = self.base_metadata(shown, line)
        copy_metadata(entry, self.metadata_fields, meta)
        return Example(
            id=stable_id(self.name, shown, line, prompt, response),
            source=self.name,
            messages=[
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": response},
            ],
            metadata=meta,
        )
