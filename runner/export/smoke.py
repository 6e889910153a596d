"""Stage "smoke": load every exported GGUF in llama.cpp's runtime and check a few greedy answers.

For a few held-out prompts (the data stage's ``test.jsonl``, else ``val.jsonl``; or training
prompts with ``eval.smoke.prompts_from: train``) rendered with the trained chat template, it records: the file loads; it produces text; it stopped on an end
token rather than at the token limit (a model that never learned its end-of-turn token runs on:
axolotl-ai-cloud/axolotl#1608); no literal special token leaked into the text; and llama.cpp
counts as many prompt tokens as the Hugging Face tokenizer, so what the model sees at inference
is what it was trained on. Any failed check fails the stage with its reason.

Each prompt is also read with its reference answer (teacher forcing), and the record says
whether the model puts the end-of-turn token first where training put it (or among its first
three, ten times likelier than right after the prompt). With
``eval.smoke.stop_test: reference`` (what ``--laptop`` sets) that check is the stop test
instead of the greedy answer's: a random tiny model learns where its turns end long before it
can reproduce a whole answer token by token, and one wrong token sends a greedy answer past
its end.

Then each GGUF is served as users serve it, by llama.cpp's OpenAI-compatible server
(``runner.llamacpp.server``), and asked ``/v1/chat/completions`` with the held-out
conversations, the Modelfile's parameters and stops: the answer must end on an end-of-turn
token (asked once more without stop strings, it still stops, with the same text), and the
server must count as many prompt tokens as the Hugging Face tokenizer. For an adapter
export, the base alone must answer differently from base + adapter on the smoke prompts: an
adapter that changes nothing is a failed export.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from runner.errors import StageError
from runner.export.prompt_tokens import compare_prompt_ids, describe
from runner.recipe.fields import Section
from runner.run.context import Outcome, StageContext

if TYPE_CHECKING:
    from runner.recipe.schema import Recipe

STAGE = "smoke"


class SmokeSection(Section):
    """`eval.smoke:`: the always-on smoke test of every exported GGUF."""

    prompts: int = Field(3, ge=1)
    """Prompts each GGUF answers."""
    prompts_from: Literal["held_out", "train"] = "held_out"
    """Where the prompts come from: `held_out` (test.jsonl, else val.jsonl) or `train`
    (train.jsonl: answers the model was trained on, so a model too small to generalize, such as
    the tiny model of `--laptop`, still shows whether the export stops where training taught
    it to)."""
    max_new_tokens: int | None = Field(None, ge=1)
    """Tokens an answer may take before it counts as not stopping. Default: one and a half
    times the longest reference answer among the prompts, plus 32, at least 64 (a model that
    learned answers of 300 tokens cannot stop within 64)."""
    require_stop: bool = True
    """Fail when the model does not stop (as `stop_test` tests it)."""
    stop_test: Literal["answer", "reference"] = "answer"
    """How stopping is tested. `answer`: the greedy answer ends on an end token within
    `max_new_tokens`. `reference`: fed the prompt and its reference answer, the model puts the
    end token training put there first (or among its first three, and ten times likelier than
    right after the prompt); the greedy answers are still written and recorded. `--laptop` sets
    `reference`: a random tiny model learns where its turns end long before it can reproduce a
    whole answer token by token."""


@dataclass
class SmokeTarget:
    """One thing to load: a full GGUF, or a base GGUF with a LoRA adapter GGUF on top."""

    kind: str
    model: Path
    adapter: Path | None = None


@dataclass
class SmokeResult:
    kind: str
    loads: bool
    error: str | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    served: list[dict[str, Any]] = field(default_factory=list)
    adapter_differs: bool | None = None


def find_targets(gguf_dir: Path, base_gguf: str | None = None) -> list[SmokeTarget]:
    """Every exported GGUF, by the gguf stage's names (``<name>-<kind>.gguf``).

    A base converted only to carry an adapter is tested with that adapter, not alone: an
    untrained base is not expected to stop on its own.
    """
    files = sorted(gguf_dir.glob("*.gguf"))
    kinds = {_kind(p): p for p in files}
    bases = [p for k, p in kinds.items() if k.startswith("base-")]
    base = Path(base_gguf) if base_gguf else (bases[0] if bases else None)
    targets = []
    for kind, path in kinds.items():
        if kind.startswith("base-"):
            continue
        if kind.startswith("lora-"):
            if base is None:
                raise StageError(STAGE, f"{path.name} is an adapter but no base GGUF was found")
            targets.append(SmokeTarget(kind, base, adapter=path))
        else:
            targets.append(SmokeTarget(kind, path))
    return targets


def _kind(path: Path) -> str:
    match = re.search(r"-((?:lora-|base-)?[a-z0-9_]+)$", path.stem)
    return match.group(1) if match else path.stem


def check_answer(
    gen: Any,
    special_tokens: list[str],
    hf_prompt_tokens: int,
    require_stop: bool,
    stop_test: str = "answer",
    tokenization: dict[str, Any] | None = None,
):
    """The failed checks of one generation (empty when it passes) and the record to keep.
    ``tokenization``: how llama.cpp's prompt tokens differ from the Hugging Face ones
    (``prompt_tokens.compare_prompt_ids``), None when they do not or were not compared."""
    leaked = [t for t in special_tokens if t in gen.text]
    ends = gen.reference_end
    checks = {
        "produces_text": bool(gen.text.strip()),
        "stopped_on_end_token": gen.finish_reason == "stop" and gen.end_token is not None,
        "no_special_tokens": not leaked,
        "prompt_tokens_match": gen.prompt_tokens == hf_prompt_tokens and tokenization is None,
    }
    if ends is not None:
        checks["ends_after_reference"] = ends_after_reference(ends)
    failures = []
    if not checks["produces_text"]:
        failures.append("produced no text")
    if not require_stop:
        pass
    elif stop_test == "answer" and not checks["stopped_on_end_token"]:
        failures.append(
            f"did not stop on an end token within {gen.completion_tokens} tokens "
            f"({gen.finish_reason}); was the end-of-turn token trained?"
        )
    elif stop_test == "reference" and ends is None:
        failures.append(
            "no reference answer with an end-of-generation token of this GGUF after it (the "
            "prompt has no reference answer, or the chat template renders none): the end of a "
            "turn cannot be tested"
        )
    elif stop_test == "reference" and not checks["ends_after_reference"]:
        failures.append(
            f"after the reference answer the model puts {ends['end_token']!r} at rank "
            f"{ends['end_rank']} (p={ends['end_probability']}, first: {ends['first_choice']!r}; "
            f"right after the prompt p={ends['start_probability']}); was the end-of-turn "
            "token trained?"
        )
    if leaked:
        failures.append(f"literal special tokens in the answer: {', '.join(leaked)}")
    if not checks["prompt_tokens_match"] and not (tokenization and tokenization["tolerated"]):
        detail = f" ({describe(tokenization)})" if tokenization else ""
        failures.append(
            f"llama.cpp reads the prompt as {gen.prompt_tokens} tokens, the Hugging Face "
            f"tokenizer as {hf_prompt_tokens}{detail}: inference does not see what training saw"
        )
    record = {**gen.to_dict(), "hf_prompt_tokens": hf_prompt_tokens, "checks": checks}
    if tokenization is not None:
        record["tokenization"] = tokenization
    return failures, record


# stop_test: reference passes when the end token is the first choice where the reference answer
# ends, or among the first three there and at least ten times likelier than right after the
# prompt. Seen 2026-12-01 after --laptop's 80 steps: models that learned where their turns end
# put it 150 to 10^8 times likelier at the end (qi's tiny model: p 0.16, ranked first or second);
# hyperswitch's ranked it second to fourth at the end and as likely right after the prompt
# (p 0.15 after any newline): it had not learned it, and a rank alone would have passed it.
REFERENCE_TOP = 3
REFERENCE_LIFT = 10


def ends_after_reference(ends: dict[str, Any]) -> bool:
    """Whether the model ends the turn where the reference answer ends (``reference_end``)."""
    if ends["first_choice_ends"]:
        return True
    start = max(ends["start_probability"], 1e-12)
    return ends["end_rank"] <= REFERENCE_TOP and ends["end_probability"] >= REFERENCE_LIFT * start


def pre_tokenizer(target: SmokeTarget) -> str | None:
    """The GGUF's llama.cpp pre-tokenizer name (``tokenizer.ggml.pre``), None if unreadable."""
    from runner.llamacpp import read_metadata

    try:
        return read_metadata(target.model).get("tokenizer_pre")
    except Exception:  # noqa: BLE001 - a file that does not load is reported by the run itself
        return None


def check_prompts(
    gens: list[Any],
    hf_ids: list[list[int]],
    tokenizer: Any,
    target: SmokeTarget,
    special: list[str],
    require_stop: bool,
    stop_test: str,
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """``check_answer`` for each generation of one target: failures and records per prompt."""
    pre = pre_tokenizer(target)
    failures, records = [], []
    for gen, ids in zip(gens, hf_ids, strict=True):
        difference = compare_prompt_ids(ids, gen.prompt_ids, tokenizer, pre)
        found, record = check_answer(gen, special, len(ids), require_stop, stop_test, difference)
        failures.append(found)
        records.append(record)
    return failures, records


def smoke_test(
    targets: list[SmokeTarget],
    prompts: list[str],
    tokenizer: Any,
    *,
    max_new_tokens: int,
    require_stop: bool,
    log_file: Path | None = None,
    references: list[str] | None = None,
    stop_test: str = "answer",
) -> list[SmokeResult]:
    """Run every target on every prompt; a file that does not load is a result, not a crash.
    ``references``: each prompt's whole rendered conversation (``reference_texts``), handed to
    llama.cpp as the tokens training's tokenizer made of it (``runtime.Reference``)."""
    from runner.llamacpp import generate_chat

    hf_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    special = special_token_texts(tokenizer)
    n_ctx = max(len(ids) for ids in hf_ids) + max_new_tokens + 16
    reference_ids = None
    if references is not None:
        reference_ids = [
            None
            if text is None
            else {
                "ids": tokenizer(text, add_special_tokens=False)["input_ids"],
                "prompt_tokens": len(ids),
            }
            for text, ids in zip(references, hf_ids, strict=True)
        ]
        n_ctx = max([n_ctx, *(len(r["ids"]) + 16 for r in reference_ids if r is not None)])
    results = []
    for target in targets:
        try:
            gens = generate_chat(
                target.model,
                prompts,
                max_new_tokens,
                n_ctx=n_ctx,
                lora_path=target.adapter,
                stage=STAGE,
                log_file=log_file,
                references=reference_ids,
            )
        except StageError as exc:  # the child process could not load or run the file
            results.append(SmokeResult(target.kind, loads=False, error=exc.message))
            continue
        result = SmokeResult(target.kind, loads=True)
        failures, result.answers = check_prompts(
            gens, hf_ids, tokenizer, target, special, require_stop, stop_test
        )
        for i, found in enumerate(failures):
            result.failures.extend(f"prompt {i + 1}: {f}" for f in found)
        results.append(result)
    return results


def special_token_texts(tokenizer: Any) -> list[str]:
    """Every special token's text, once: none may appear literally in an answer."""
    special = [t for t in tokenizer.all_special_tokens if t] + [
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special
    ]
    return list(dict.fromkeys(special))


def server_request(target: Any, max_new_tokens: int) -> dict[str, Any]:
    """The sampling parameters of a Modelfile (an ollama export) as an OpenAI request: those it
    sets, greedy where it sets no temperature, seeded where it sets no seed."""
    request: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": 0.0, "seed": 0}
    if target is None:
        return request
    p = target.parameters
    for key in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed"):
        if getattr(p, key) is not None:
            request[key] = getattr(p, key)
    if p.num_predict is not None and p.num_predict > 0:
        request["max_tokens"] = min(max_new_tokens, p.num_predict)
    return request


def serve_test(
    result: SmokeResult,
    target: SmokeTarget,
    conversations: list[list[dict[str, Any]]],
    hf_counts: list[int],
    request: dict[str, Any],
    stops: list[str],
    *,
    n_ctx: int,
    log_file: Path,
    require_stop: bool = True,
) -> None:
    """Serve one target with llama.cpp's server and check its chat answers (into ``result``)."""
    from runner.llamacpp.server import chat_completion, serve

    try:
        with serve(
            target.model, n_ctx=n_ctx, lora_path=target.adapter, stage=STAGE, log_file=log_file
        ) as url:
            for i, (messages, count) in enumerate(zip(conversations, hf_counts, strict=True)):
                asked = chat_completion(url, {**request, "messages": messages, "stop": stops})
                bare = chat_completion(url, {**request, "messages": messages, "stop": []})
                resplit = _tolerated_count(result.answers[i] if i < len(result.answers) else {})
                failures, record = check_served(asked, bare, count, stops, require_stop, resplit)
                result.served.append(record)
                result.failures.extend(f"prompt {i + 1}, served: {f}" for f in failures)
    except StageError as exc:
        result.failures.append(f"llama.cpp's server: {exc.message}")


def _tolerated_count(answer: dict[str, Any]) -> int | None:
    """llama.cpp's prompt token count of a runtime answer whose difference from the Hugging
    Face tokens is a known re-split (``prompt_tokens``), else None."""
    tokenization = answer.get("tokenization") or {}
    return answer.get("prompt_tokens") if tokenization.get("tolerated") else None


def check_served(
    asked: dict,
    bare: dict,
    hf_prompt_tokens: int,
    stops: list[str],
    require_stop: bool = True,
    resplit_tokens: int | None = None,
):
    """The failed checks of one served answer, and the record to keep. ``asked`` was asked
    with the Modelfile's stops, ``bare`` without any: only an end-of-generation token can
    stop that one. ``resplit_tokens``: the runtime's count of the same rendered prompt when it
    differs from the Hugging Face count by a known re-split (``prompt_tokens``); the server
    reading that many tokens rendered the same text."""
    choice, bare_choice = asked["choices"][0], bare["choices"][0]
    text = choice["message"].get("content") or ""
    prompt_tokens = asked["usage"]["prompt_tokens"]
    checks = {
        "stopped": choice["finish_reason"] == "stop",
        "ends_on_end_of_turn": bare_choice["finish_reason"] == "stop"
        and (bare_choice["message"].get("content") or "") == text,
        "prompt_tokens_match": prompt_tokens in (hf_prompt_tokens, resplit_tokens),
        "no_stop_strings": not [s for s in stops if s in text],
    }
    failures = []
    if not require_stop:
        pass
    elif not checks["stopped"]:
        failures.append(f"did not stop ({choice['finish_reason']})")
    elif not checks["ends_on_end_of_turn"]:
        failures.append(
            "without the Modelfile's stop strings the answer does not end the same way "
            f"({bare_choice['finish_reason']}): it stopped on a stop string, not on the "
            "end-of-turn token"
        )
    if not checks["prompt_tokens_match"]:
        failures.append(
            f"the server reads the prompt as {prompt_tokens} tokens, the Hugging Face "
            f"tokenizer as {hf_prompt_tokens}: its chat template does not render what training saw"
        )
    if not checks["no_stop_strings"]:
        failures.append("a stop string is in the answer")
    record = {
        "text": text,
        "finish_reason": choice["finish_reason"],
        "prompt_tokens": prompt_tokens,
        "hf_prompt_tokens": hf_prompt_tokens,
        "completion_tokens": asked["usage"]["completion_tokens"],
        "checks": checks,
    }
    return failures, record


def adapter_test(
    result: SmokeResult,
    target: SmokeTarget,
    prompts: list[str],
    max_new_tokens: int,
    n_ctx: int,
    log_file: Path | None,
) -> None:
    """An adapter must change the answers: the base alone answers every smoke prompt."""
    from runner.llamacpp import generate_chat

    try:
        base = generate_chat(
            target.model, prompts, max_new_tokens, n_ctx=n_ctx, stage=STAGE, log_file=log_file
        )
    except StageError as exc:
        result.failures.append(f"the base alone: {exc.message}")
        return
    tuned = [a["text"] for a in result.answers]
    result.adapter_differs = any(b.text != t for b, t in zip(base, tuned, strict=True))
    if not result.adapter_differs:
        result.failures.append(
            "the base alone answers every smoke prompt exactly as base + adapter: the adapter "
            "changes nothing (was it trained, and converted from the trained folder?)"
        )


def reference_texts(template: Any, cases: list[Any], prompts: list[str]) -> list[str | None]:
    """Each case's whole conversation as training rendered it: the prompt, the reference answer
    and what the template writes after it (the end token); None where that text does not
    start with the generation prompt, so the answer's tokens cannot be found in it."""
    texts: list[str | None] = []
    for case, prompt in zip(cases, prompts, strict=True):
        if case.reference is None:  # a test prompt without a reference answer
            texts.append(None)
            continue
        answer = {"role": "assistant", "content": case.reference}
        full = template.render([*case.prompt, answer])
        texts.append(full if full.startswith(prompt) and len(full) > len(prompt) else None)
    return texts


def answer_budget(tokenizer: Any, cases: list[Any]) -> int:
    """The default token limit: 1.5 x the longest reference answer + 32, at least 64."""
    longest = max(len(tokenizer(c.reference, add_special_tokens=False)["input_ids"]) for c in cases)
    return max(64, longest * 3 // 2 + 32)


def run(recipe: Recipe, ctx: StageContext) -> Outcome:
    """Smoke-test every GGUF the gguf stage wrote; write ``smoke.json``; fail on any failure."""
    from transformers import AutoTokenizer

    from runner.dataset import held_out, read_split, with_prompts
    from runner.prompt.template import read_template

    options = recipe.eval.smoke
    lora = recipe.exports("lora_gguf")
    gguf_dir = ctx.require("gguf")
    # The adapter is tested on the GGUF it applies to: the user's own for a GGUF model.base.
    targets = find_targets(gguf_dir, str(lora[0].base_path(recipe, gguf_dir)) if lora else None)
    if not targets:
        raise StageError(STAGE, f"no GGUF file in {gguf_dir} to smoke-test")
    train_dir = ctx.require("train")
    template = read_template(train_dir)
    data = ctx.require("data")
    if options.prompts_from == "train":
        held = with_prompts(read_split(data, "train"))
    else:
        held = held_out(data)
    if not held.rows:
        raise StageError(
            STAGE,
            "no held-out conversation to smoke-test with: the data stage wrote no usable "
            "test.jsonl or val.jsonl (give the split a test or validation share, or set "
            "eval.smoke.prompts_from: train)",
        )
    cases = held.rows[: options.prompts]
    prompts = [template.render(c.prompt, add_generation_prompt=True) for c in cases]
    tokenizer = AutoTokenizer.from_pretrained(str(train_dir))
    max_new_tokens = options.max_new_tokens or answer_budget(tokenizer, cases)
    results = smoke_test(
        targets,
        prompts,
        tokenizer,
        max_new_tokens=max_new_tokens,
        require_stop=options.require_stop,
        log_file=ctx.log_file,
        references=reference_texts(template, cases, prompts),
        stop_test=options.stop_test,
    )
    hf_counts = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    n_ctx = max(hf_counts) + max_new_tokens + 16
    ollama_targets = recipe.exports("ollama")
    modelfile = ollama_targets[0] if ollama_targets else None
    request = server_request(modelfile, max_new_tokens)
    for target, result in zip(targets, results, strict=True):
        if not result.loads:
            continue
        stops = _modelfile_stops(template, modelfile, target.model)
        conversations = [[dict(m) for m in c.prompt] for c in cases]
        serve_test(
            result, target, conversations, hf_counts, request, stops,
            n_ctx=n_ctx, log_file=ctx.out / "logs" / f"server-{target.kind}.log",
            # With stop_test: reference the served answers' stops are recorded, not required.
            require_stop=options.require_stop and options.stop_test == "answer",
        )  # fmt: skip
        if target.adapter is not None:
            adapter_test(result, target, prompts, max_new_tokens, n_ctx, ctx.log_file)
    infill = _infill(targets, ctx, tokenizer, options)
    report = {
        "prompts_from": held.path.name,
        "prompt_ids": [c.id for c in cases],
        "require_stop": options.require_stop,
        "stop_test": options.stop_test,
        "max_new_tokens": max_new_tokens,
        "server_request": request,
        "models": {r.kind: _result_dict(r) for r in results},
        # What each result loaded: for a GGUF model.base, the user's own file + the adapter.
        "files": {
            t.kind: {"model": str(t.model), "adapter": str(t.adapter) if t.adapter else None}
            for t in targets
        },
        **({"infill": infill} if infill else {}),
    }
    (ctx.out / "smoke.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    failures = []
    for r in results:
        if not r.loads:
            failures.append(f"{r.kind}: does not load: {r.error}")
        failures.extend(f"{r.kind}: {f}" for f in r.failures)
    failures.extend(infill["failures"] if infill else ())
    if failures:
        raise StageError(STAGE, "; ".join(failures[:8]) + f" (details: {ctx.out / 'smoke.json'})")
    summary = {
        "passed": True,
        "stop_test": options.stop_test,
        "models": {
            r.kind: {
                "loads": r.loads,
                "stopped": sum(a["checks"]["stopped_on_end_token"] for a in r.answers),
                "ends_after_reference": sum(
                    bool(a["checks"].get("ends_after_reference")) for a in r.answers
                ),
                "answers": len(r.answers),
                "served": sum(all(a["checks"].values()) for a in r.served),
                **({"adapter_differs": r.adapter_differs} if r.adapter_differs is not None else {}),
            }
            for r in results
        },
    }
    notes = [n for n in (held.skip_note(),) if n]
    return Outcome(summary=summary, outputs={"smoke": "smoke.json"}, notes=notes)


def _infill(targets: list[SmokeTarget], ctx: StageContext, tokenizer: Any, options: Any):
    """The infill smoke test (``runner.export.infill``) when the model was trained with
    fill-in-the-middle rows (the train stage kept their ``fim.json``), else None."""
    from runner.prompt.fim import read_fim

    if read_fim(ctx.require("train")) is None:
        return None
    from runner.export.infill import smoke_infill

    return smoke_infill(
        targets,
        ctx.require("data"),
        tokenizer,
        prompts=options.prompts,
        max_new_tokens=options.max_new_tokens,
        require_stop=options.require_stop,
        prompts_from=options.prompts_from,
        log_file=ctx.log_file,
        stop_test=options.stop_test,
    )


def _result_dict(result: SmokeResult) -> dict[str, Any]:
    return {
        "loads": result.loads,
        "error": result.error,
        "passed": result.loads and not result.failures,
        "failures": result.failures,
        "answers": result.answers,
        "served": result.served,
        "adapter_differs": result.adapter_differs,
    }


def _modelfile_stops(template: Any, modelfile: Any, gguf: Path) -> list[str]:
    """The Modelfile's stops: the template's, the GGUF's end tokens, the recipe's extras."""
    from runner.export.ollama import modelfile_stops
    from runner.llamacpp import read_metadata

    tokens = read_metadata(gguf)["tokens"]
    special = [tokens[r]["text"] for r in ("eos", "eot", "eom") if tokens.get(r)]
    if modelfile is None:
        return list(dict.fromkeys([*template.stop, *special]))
    return modelfile_stops(template, modelfile, special)
