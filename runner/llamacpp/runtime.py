"""Greedy generation with llama.cpp's runtime, in a child process
(``python -m runner.llamacpp generate``)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from runner import proc
from runner.errors import StageError, UserError


@dataclass
class Generation:
    """One greedy completion. ``finish_reason`` is ``stop`` when an end token ended it, else ``length``."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    end_token: str | None = None  # the end-of-generation token that stopped it, as text
    stop_string: str | None = None  # a caller's stop string that cut the text, if any
    seconds: float = 0.0  # wall time from the prompt's tokenization to the last token
    token_ids: list[int] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)  # the prompt as llama.cpp tokenized it
    # Fed the prompt and its reference answer (teacher forcing): what the model puts next where
    # training put the end token (see ``end_after_reference``); None when not asked.
    reference_end: dict[str, Any] | None = None

    @property
    def tokens_per_second(self) -> float | None:
        return self.completion_tokens / self.seconds if self.seconds > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("token_ids", "prompt_ids")}


class Reference(TypedDict):
    """A reference conversation as training's tokenizer read it: all of its tokens, and how
    many of them are the prompt."""

    ids: list[int]
    prompt_tokens: int


def generate_chat(
    gguf_path: Path,
    prompts: Sequence[str],
    max_tokens: int = 64,
    stop: Sequence[str] = (),
    *,
    n_ctx: int = 4096,
    lora_path: Path | None = None,
    stage: str = "generate",
    log_file: Path | None = None,
    references: Sequence[Reference | None] | None = None,
) -> list[Generation]:
    """Greedy-generate from each already-rendered chat prompt with llama.cpp's runtime.

    ``references``, one per prompt: the whole conversation training saw (the prompt, the
    reference answer and the end token the template writes after it) as training's tokenizer
    read it (a ``Reference``); each generation then also records ``reference_end``
    (:func:`end_after_reference`).

    Prompts are tokenized exactly as written (special tokens parsed, no BOS added): the chat
    template already wrote every special token the model was trained with, as in training.
    Generation ends on any end-of-generation token of the GGUF (``stop``), or at ``max_tokens``
    (``length``); a caller's ``stop`` string also ends it and is reported as ``stop_string``.

    Runs in a child process, so that a crash in the C library fails a stage with a log instead
    of killing the runner. If the child dies, it is retried once without llama.cpp's extra CPU
    buffer types: on some virtual machines the CPU reports AMX, the kernel grants it, and the
    first AMX instruction still raises SIGILL (seen on this project's CI machines).
    """
    global _EXTRA_BUFFERS
    request = {
        "model": str(gguf_path),
        "prompts": list(prompts),
        "max_tokens": max_tokens,
        "stop": list(stop),
        "n_ctx": n_ctx,
        "lora_path": str(lora_path) if lora_path else None,
        "references": list(references) if references is not None else None,
    }
    with tempfile.TemporaryDirectory(prefix="recipe-generate-") as tmp:
        log = log_file or Path(tmp) / "generate.log"
        attempts = [False] if _EXTRA_BUFFERS is False else [True, False]
        for i, extra in enumerate(attempts):
            req, res = Path(tmp) / "request.json", Path(tmp) / "result.json"
            req.write_text(json.dumps({**request, "extra_buffers": extra}), encoding="utf-8")
            argv = proc.python_argv("-m", "runner.llamacpp", "generate", str(req), str(res))
            try:
                proc.run(argv, stage=stage, log_file=log)
            except StageError as exc:
                if i + 1 < len(attempts):
                    continue
                text = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
                raise StageError(
                    stage, f"llama.cpp could not run {gguf_path}: {exc.message}\n{text}"
                ) from None
            _EXTRA_BUFFERS = extra
            rows = json.loads(res.read_text(encoding="utf-8"))
            return [Generation(**row) for row in rows]
    raise AssertionError("unreachable")


# None: not known yet in this process; False: extra buffer types crashed here once.
_EXTRA_BUFFERS: bool | None = None
if os.environ.get("RECIPE_LLAMA_EXTRA_BUFFERS", "").lower() in ("0", "false", "off"):
    _EXTRA_BUFFERS = False


def extra_buffers_crash_here() -> bool:
    """Whether llama.cpp's extra CPU buffer types crashed in this process (or are switched
    off by RECIPE_LLAMA_EXTRA_BUFFERS=0): other llama.cpp children should start without."""
    return _EXTRA_BUFFERS is False


def disable_extra_buffers() -> None:
    """Start every model of this (child) process without llama.cpp's extra CPU buffer types.

    The high-level Llama class has no switch for it: change the defaults it starts from
    (llama.py reads them from the llama_cpp.llama_cpp module)."""
    import llama_cpp.llama_cpp as low_level

    default_params = low_level.llama_model_default_params

    def without_extra_buffers():
        params = default_params()
        params.use_extra_bufts = False
        return params

    low_level.llama_model_default_params = without_extra_buffers


def _generate_here(request_file: str, result_file: str) -> int:
    """The child side of :func:`generate_chat`."""
    import llama_cpp

    request = json.loads(Path(request_file).read_text(encoding="utf-8"))
    if not request["extra_buffers"]:
        disable_extra_buffers()
    llm = llama_cpp.Llama(
        model_path=request["model"],
        n_ctx=request["n_ctx"],
        n_threads=os.cpu_count() or 1,
        seed=0,
        verbose=False,
        lora_path=request["lora_path"],
    )
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    references = request.get("references") or [None] * len(request["prompts"])
    rows = []
    for prompt, reference in zip(request["prompts"], references, strict=True):
        result = _generate_one(llm, vocab, prompt, request["max_tokens"], request["stop"])
        if reference is not None:
            result.reference_end = end_after_reference(llm, vocab, reference)
        rows.append(result.__dict__)
    llm.close()
    Path(result_file).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return 0


def _generate_one(llm: Any, vocab: Any, prompt: str, max_tokens: int, stop: Sequence[str]):
    import llama_cpp

    start = time.perf_counter()
    prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    if len(prompt_ids) + max_tokens > llm.n_ctx():
        raise UserError(
            f"a prompt of {len(prompt_ids)} tokens plus {max_tokens} new tokens does not fit "
            f"the context of {llm.n_ctx()} tokens"
        )
    out: list[int] = []
    result = Generation("", "length", len(prompt_ids), 0)
    for token in llm.generate(prompt_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            result.finish_reason = "stop"
            result.end_token = llm.detokenize([token], special=True).decode("utf-8", "replace")
            break
        out.append(token)
        text = llm.detokenize(out, prev_tokens=prompt_ids, special=True).decode("utf-8", "replace")
        cut = next((s for s in stop if s in text), None)
        if cut is not None:
            result.finish_reason, result.stop_string = "stop", cut
            break
        if len(out) >= max_tokens:
            break
    text = llm.detokenize(out, prev_tokens=prompt_ids, special=True).decode("utf-8", "replace")
    if result.stop_string:
        text = text[: text.index(result.stop_string)]
    result.text = text
    result.completion_tokens = len(out)
    result.token_ids = out
    result.prompt_ids = list(prompt_ids)
    result.seconds = round(time.perf_counter() - start, 4)
    return result


def end_after_reference(llm: Any, vocab: Any, reference: Reference) -> dict[str, Any] | None:
    """Teacher forcing at the end of a training answer: the whole conversation (prompt,
    reference answer, end token, as the chat template renders it) is read by the model up to
    the first end-of-generation token after the prompt, and the record says what it puts first
    there and how likely the end token is.

    ``reference`` holds the tokens training's tokenizer made of that text, not llama.cpp's
    reading of it: llama.cpp's tokenizer may read the same text as other tokens (meton's code
    answer: 175 tokens where the Hugging Face tokenizer read 161), and a model that learned its
    training tokens would then be asked about text it never saw.

    A model that learned where its turns end puts the end token first there, whether or not it
    can reproduce the whole answer greedily (a random tiny model cannot). None when the rendered
    answer holds no end-of-generation token or does not fit the context.
    """
    import llama_cpp
    import numpy as np

    ids, prompt_tokens = list(reference["ids"]), int(reference["prompt_tokens"])
    end = next(
        (i for i in range(prompt_tokens, len(ids)) if llama_cpp.llama_vocab_is_eog(vocab, ids[i])),
        None,
    )
    if end is None or end > llm.n_ctx():
        return None

    def last_logits(tokens: list[int]) -> Any:
        llm.reset()
        llm.eval(tokens)
        return np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)
        ).astype(np.float64)

    def softmax(logits: Any) -> Any:
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

    # Where the answer begins: a model that learned where its turns end puts the end token far
    # less likely there (agent-logs' tiny model: 1e-8 at the start, 0.99 at the end).
    at_start = softmax(last_logits(ids[:prompt_tokens]))[ids[end]]
    logits = last_logits(ids[:end])
    probs = softmax(logits)
    first = int(np.argmax(logits))

    def text(token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", "replace")

    return {
        "answer_tokens": end - prompt_tokens,
        "end_token": text(ids[end]),
        "first_choice": text(first),
        "first_choice_ends": bool(llama_cpp.llama_vocab_is_eog(vocab, first)),
        "end_probability": round(float(probs[ids[end]]), 4),
        "end_rank": int((logits > logits[ids[end]]).sum()) + 1,
        # The same token's probability right after the prompt, where no answer should end.
        "start_probability": float(f"{at_start:.3g}"),
    }
