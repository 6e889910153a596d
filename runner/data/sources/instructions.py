"""`type: instructions`: JSON/JSONL instruction datasets (Alpaca, ZigNet, prompt/completion, custom)."""

from __future__ import annotations

from typing import Any

from runner.data.example import Example, stable_id
from runner.data.outcome import Rejection, bad_input
from runner.data.reading import copy_metadata, dotted
from runner.data.registries import SOURCES
from runner.data.sources.base import FieldTemplate, JsonRecordSource

# Field names of each layout: instruction, input, output, system (None = not in this layout).
LAYOUTS: dict[str, dict[str, str | None]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output", "system": None},
    # ZigNet (seed 000): instruction/context/response plus a `metadata` object copied whole.
    "zignet": {
        "instruction": "instruction",
        "input": "context",
        "output": "response",
        "system": None,
    },
    "prompt_completion": {
        "instruction": "prompt",
        "input": None,
        "output": "completion",
        "system": None,
    },
}


def detect_layout(record: dict[str, Any]) -> str | None:
    """The layout a record is in, judged by its keys (for ``format: auto``)."""
    if "instruction" in record and "response" in record:
        return "zignet"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    return None


@SOURCES.register("instructions")
class InstructionsSource(JsonRecordSource):
    """Each record becomes one user turn (instruction + input via ``input_template``) and one
    assistant turn (the output). Fields named in ``metadata_fields`` and, for ZigNet, the whole
    ``metadata`` object are carried into the example's metadata."""

    suffixes = (".json", ".jsonl")

    def __init__(self, spec: dict[str, Any], name: str, log_file=None):
        super().__init__(spec, name, log_file)
        self.format = spec.get("format", "auto")
        self.input_template = FieldTemplate(
            spec.get("input_template", "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}")
        )
        self.metadata_fields = list(spec.get("metadata_fields") or [])
        if self.format == "custom":
            fields = dict(spec.get("fields") or {})
            self.custom = {k: fields.get(k) for k in ("instruction", "input", "output", "system")}

    def fields_for(self, record: dict[str, Any]) -> dict[str, str | None] | None:
        if self.format == "custom":
            return self.custom
        layout = detect_layout(record) if self.format == "auto" else self.format
        return LAYOUTS.get(layout) if layout else None

    def convert(self, record: Any, shown: str, line: int) -> Example | Rejection:
        if not isinstance(record, dict):
            return self.not_an_object(record, shown, line)
        fields = self.fields_for(record)
        if fields is None:
            return bad_input(
                self.stage,
                "unknown layout",
                f"keys {sorted(record)[:8]} match no instruction layout",
                shown,
                line,
                raw=record,
            )
        values: dict[str, str] = {}
        for role, key in fields.items():
            if key is None:
                continue
            try:
                value = dotted(record, key)
            except KeyError:
                if role in ("instruction", "output"):
                    return bad_input(
                        self.stage, "missing field", f"no '{key}' field", shown, line, raw=record
                    )
                continue
            if value is None:
                value = ""
            if not isinstance(value, str):
                return bad_input(
                    self.stage,
                    "wrong field type",
                    f"'{key}' is {type(value).__name__}, not text",
                    shown,
                    line,
                    raw=record,
                )
            values[role] = value
        if not values["output"].strip():
            return bad_input(
                self.stage,
                "empty output",
                f"'{fields['output']}' is empty",
                shown,
                line,
                raw=record,
            )
        try:
            user = self.input_template.render(
                {**record, "instruction": values["instruction"], "input": values.get("input", "")}
            )
        except (KeyError, ValueError) as exc:
            return bad_input(
                self.stage,
                "missing field",
                f"input_template uses '{exc.args[0]}', which the record lacks",
                shown,
                line,
                raw=record,
            )
        messages = []
        if values.get("system"):
            messages.append({"role": "system", "content": values["system"]})
        messages += [
            {"role": "user", "content": user},
            {"role": "assistant", "content": values["output"]},
        ]
        meta = self.base_metadata(shown, line)
        zignet = self.format == "zignet" or (self.format == "auto" and "response" in record)
        if zignet and isinstance(record.get("metadata"), dict):
            meta.update(record["metadata"])
        copy_metadata(record, self.metadata_fields, meta)
        return Example(
            id=stable_id(self.name, shown, line, user, values["output"]),
            source=self.name,
            messages=messages,
            metadata=meta,
        )
