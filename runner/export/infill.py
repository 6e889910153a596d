"""The smoke test's infill part: every exported GGUF answers a fill-in-the-middle prompt through
llama.cpp's runtime and stops.

A model trained with ``fill_in_middle`` examples must write the middle and end it with its end
token when an editor (or Ollama's ``suffix`` request) sends prefix and suffix in the family's
FIM tokens. The prompts are held-out infill rows of the data stage (``test.fim.jsonl``, else
``val``, else ``train``; only ``train`` with ``eval.smoke.prompts_from: train``), sent exactly
as Axolotl tokenized them in training: BOS when the tokenizer adds one, then the prompt with its
special tokens parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.dataset import read_fim_split
from runner.errors import StageError
from runner.prompt.fim import training_prefix


def infill_cases(
    data_dir: Path, count: int, splits: tuple[str, ...] = ("test", "val", "train")
) -> tuple[str, list[Any]]:
    """``(split file name, rows)`` of up to ``count`` infill rows, from the first of ``splits``
    that has some (held-out ones first by default)."""
    for split in splits:
        rows = read_fim_split(data_dir, split)
        if rows.rows:
            return rows.path.name, rows.rows[:count]
    return "", []


def smoke_infill(
    targets: list[Any],
    data_dir: Path,
    tokenizer: Any,
    *,
    prompts: int,
    max_new_tokens: int | None,
    require_stop: bool,
    prompts_from: str = "held_out",
    log_file: Path | None = None,
    stop_test: str = "answer",
) -> dict[str, Any]:
    """Each target's answers to the infill prompts, checked as the chat answers are (text,
    stopped on an end token, no special token, llama.cpp reads the prompt as training did);
    ``failures`` lists what failed. ``max_new_tokens`` None: the smoke test's default budget
    from the longest middle."""
    from runner.export.smoke import answer_budget, check_prompts, special_token_texts
    from runner.llamacpp import generate_chat

    splits = ("train",) if prompts_from == "train" else ("test", "val", "train")
    source, cases = infill_cases(data_dir, prompts, splits)
    report: dict[str, Any] = {"prompts_from": source, "models": {}, "failures": []}
    if not cases:
        report["failures"].append("the model was trained with infill rows, but none is left")
        return report
    max_new_tokens = max_new_tokens or answer_budget(tokenizer, cases)
    report["max_new_tokens"] = max_new_tokens
    bos = training_prefix(tokenizer)
    texts = [bos + case.prompt[-1]["content"] for case in cases]
    hf_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    hf_counts = [len(ids) for ids in hf_ids]
    # As the train stage wrote them (Axolotl `input_output` segments, each tokenized alone):
    # the prompt, then the middle ending with the trained tokenizer's eos.
    references = [
        {
            "ids": ids
            + tokenizer(case.reference + (tokenizer.eos_token or ""), add_special_tokens=False)[
                "input_ids"
            ],
            "prompt_tokens": len(ids),
        }
        for ids, case in zip(hf_ids, cases, strict=True)
    ]
    special = special_token_texts(tokenizer)
    n_ctx = max(max(hf_counts) + max_new_tokens, *(len(r["ids"]) for r in references)) + 16
    for target in targets:
        try:
            gens = generate_chat(
                target.model,
                texts,
                max_new_tokens,
                n_ctx=n_ctx,
                lora_path=target.adapter,
                stage="smoke",
                log_file=log_file,
                references=references,
            )
        except StageError as exc:
            report["models"][target.kind] = {"loads": False, "error": exc.message}
            report["failures"].append(f"{target.kind}: infill: does not load: {exc.message}")
            continue
        found, answers = check_prompts(
            gens, hf_ids, tokenizer, target, special, require_stop, stop_test
        )
        for i, (case, record, failures) in enumerate(zip(cases, answers, found, strict=True)):
            record.update(id=case.id, middle=case.reference)
            report["failures"].extend(f"{target.kind}: infill {i + 1}: {f}" for f in failures)
        report["models"][target.kind] = {"loads": True, "answers": answers}
    return report
