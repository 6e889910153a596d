"""`type: instructions`: JSON/JSONL instruction datasets (Alpaca, ZigNet, prompt/completion, custom)."""

from __future__ import annotations

from typing import Any, Literal

from runner.data.example import Example, stable_id
from runner.data.outcome import Rejection, bad_input
from runner.data.reading import copy_metadata, dotted
from runner.data.registries import SOURCES
from runner.data.sources.base import FieldTemplate, JsonRecordSource, SourceOptions
from runner.recipe.fields import Section

# Field names of each layout: instruction, input, output, system (None = not in this layout).
LAYOUTS: dict[str, dict[str, str | None]] = {
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output", "system": None},
    # ZigNet (datasets/zignet): instruction/context/response plus a `metadata` object copied whole.
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


class CustomFields(Section):
    """Field names for `format: custom` (dotted paths allowed)."""

    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    system: str | None = None


@SOURCES.register
class InstructionsSource(JsonRecordSource):
    """Each record becomes one user turn (instruction + input via ``input_template``) and one
    assistant turn (the output). Fields named in ``metadata_fields`` and, for ZigNet, the whole
    ``metadata`` object are carried into the example's metadata."""

    suffixes = (".json", ".jsonl")

    class Options(SourceOptions):
        """Instruction datasets: Alpaca, the ZigNet layout, prompt/completion, or custom
        fields."""

        type: Literal["instructions"]
        format: Literal["auto", "alpaca", "zignet", "prompt_completion", "custom"] = "auto"
        """Field layout."""
        fields: CustomFields = CustomFields()
        """Field names for `format: custom` (dotted paths allowed)."""
        input_template: str = "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}"
        """How instruction and input are joined into the user turn (Jinja)."""
        metadata_fields: tuple[str, ...] = ()
        """Fields copied into the example metadata (dotted paths; `metadata` objects are copied
        whole)."""

    def __init__(self, options: Options, name: str, log_file=None):
        super().__init__(options, name, log_file)
        self.format = options.format
        self.input_template = FieldTemplate(options.input_template)
        self.metadata_fields = list(options.metadata_fields)
        if self.format == "custom":
            self.custom = options.fields.model_dump()

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
