"""Writing: the split files from the spool, the token statistics, the leak check, and
``rejected.jsonl`` (every dropped or altered example, skipped file and file without examples,
with its reason)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from runner.data import split as splitting
from runner.data.example import Example
from runner.data.outcome import Rejection
from runner.dataset import fim_file
from runner.errors import StageError, UserError

# Token statistics count every written example up to this many, else a seeded sample this size
# (rendering through the chat template and tokenizing every example cost more than the rest of
# the stage together); the report says which.
TOKEN_SAMPLE = 1000

# Rows about whole files, not examples: written, not counted as rejected examples.
FILE_ACTIONS = ("skip", "no examples")


class RejectedRows:
    """``rejected.jsonl``, and the report's counts of what it holds. Bad input stops the stage
    when the recipe says ``on_error: fail``."""

    def __init__(self, path: Path, report: Any, on_error: str):
        self.handle = path.open("w", encoding="utf-8")
        self.report = report
        self.on_error = on_error

    def __call__(self, rejection: Rejection) -> None:
        if rejection.bad_input and self.on_error == "fail":
            raise StageError(
                "data",
                f"{rejection.where()}: {rejection.reason}: {rejection.detail} (on_error: fail)",
            )
        if rejection.action not in FILE_ACTIONS:
            self.report.rejection(rejection)
        self.handle.write(json.dumps(rejection.to_record(), ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.handle.close()


def token_sample(kept: list[splitting.Kept], seed: int, report: Any) -> set[int] | None:
    """Indexes of the examples whose tokens are counted: None means all of them."""
    alive = [item.index for item in kept if item.dropped is None]
    if len(alive) <= TOKEN_SAMPLE:
        return None
    report.token_sample = {"examples": TOKEN_SAMPLE, "of": len(alive), "seed": seed}
    return set(random.Random(seed).sample(alive, TOKEN_SAMPLE))


def where(meta: dict[str, Any]) -> dict[str, Any]:
    """A rejected row's place: the example's source file and line."""
    return {"file": meta.get("source_file"), "line": meta.get("line")}


def write_splits(
    selection: Any, out: Path, reject: Any, report: Any, template: Any, tokens: Any
) -> None:
    """Second pass over the spool: each kept example to its split (``copies`` times), each
    example dropped by caps, balance, weights or decontamination to ``rejected.jsonl``."""
    from runner.data.filters.dedupe import normalised_hash

    outputs = {
        name: (out / f"{name}.jsonl").open("w", encoding="utf-8") for name in splitting.SPLITS
    }
    # Infill rows train as completion text, apart from the chat rows: `<split>.fim.jsonl`.
    fim_outputs: dict[str, Any] = {}
    held_out: set[bytes] = set()
    train_hashes: list[bytes] = []
    groups: dict[str, set[str]] = {}
    seed = selection.split_spec.seed
    counted = set() if template is None else token_sample(selection.kept, seed, report)
    try:
        with selection.spool_path.open(encoding="utf-8") as spool:
            for item, line in zip(selection.kept, spool, strict=True):
                # Most lines are copied as they are: the record is parsed only where it is read
                # (a drop, a counted example, a hash or copies to make); parsing every line was
                # 0.15 of this pass's 0.7 CPU s on the bench corpus, all of it after the workers.
                counts = counted is None or item.index in counted
                record = None
                if item.dropped is not None or counts or not item.text_hash or item.copies > 1:
                    record = json.loads(line)
                if item.dropped is not None:
                    stage, reason, detail = item.dropped
                    meta = record["meta"]
                    example = Example(
                        record["id"], meta.get("source", ""), record["messages"], metadata=meta
                    )
                    reject(
                        Rejection(stage, reason, detail, example=example, **where(meta)), item.task
                    )
                    continue
                fim = item.fim
                if counts:
                    try:
                        item.tokens = tokens.count(
                            "".join(m["content"] for m in record["messages"])
                            if fim
                            else template.render(record["messages"])
                        )
                    except UserError as exc:
                        item.dropped = ("format", "cannot render", str(exc))
                        rejection = Rejection(
                            "format", "cannot render", str(exc), **where(record["meta"])
                        )
                        reject(rejection, item.task)
                        continue
                text_hash = item.text_hash or normalised_hash(
                    "\n".join(m["content"] for m in record["messages"] if m["role"] != "system")
                )
                (train_hashes.append if item.split == "train" else held_out.add)(text_hash)
                groups.setdefault(item.group, set()).add(item.split)
                if fim and item.split not in fim_outputs:
                    path = fim_file(out, item.split)
                    fim_outputs[item.split] = path.open("w", encoding="utf-8")
                output = (fim_outputs if fim else outputs)[item.split]
                output.write(line)  # the spool's line is the record's JSON
                for copy in range(1, item.copies):
                    row = {**record, "id": f"{record['id']}#r{copy + 1}"}
                    output.write(json.dumps(row, ensure_ascii=False) + "\n")
                report.written(item)
                if fim:
                    report.fim_counts[item.split] += item.copies
                selection.ledger.wrote(item.task, item.copies)
    finally:
        for handle in (*outputs.values(), *fim_outputs.values()):
            handle.close()
    report.leak_check = {
        "groups_in_several_splits": sum(1 for s in groups.values() if len(s) > 1),
        "train_exact_duplicates_of_val_test": sum(1 for h in train_hashes if h in held_out),
        "train_near_duplicates_removed": report.decontaminated,
        "decontaminate": selection.plan.signature is not None,
    }
