"""The smoke test: every exported GGUF loads in llama.cpp and answers held-out prompts properly."""

from __future__ import annotations

import json

import pytest

from runner.export import smoke
from runner.export.smoke import (
    SmokeResult,
    SmokeTarget,
    adapter_test,
    check_answer,
    check_served,
    find_targets,
    server_request,
    smoke_test,
)
from runner.llamacpp import Generation


@pytest.mark.slow
@pytest.mark.xdist_group("export-tiny-qwen2")
def test_trained_model_passes_the_smoke_test(exported_run, stage_runner):
    run_dir, recipe, _ = exported_run
    summary = stage_runner(smoke, recipe, run_dir, "smoke")
    assert summary["passed"] is True
    # Every full file and the base + adapter pair answered all three held-out prompts and
    # stopped on <|im_end|>, although the tokenizer's eos is <|endoftext|>, in llama.cpp's
    # runtime and through its OpenAI-compatible server; the adapter changes the answers.
    expected = {
        "loads": True,
        "stopped": 3,
        "ends_after_reference": 3,
        "answers": 3,
        "served": 3,
    }
    assert summary["models"] == {
        **{kind: expected for kind in ("f16", "q4_k_m", "q8_0")},
        "lora-f16": {**expected, "adapter_differs": True},
    }
    report = json.loads((run_dir / "smoke" / "smoke.json").read_text())
    assert report["prompts_from"] == "test.jsonl"
    assert report["server_request"] == {"max_tokens": 24, "temperature": 0.0, "seed": 0}
    for result in report["models"].values():
        for answer in result["answers"]:
            assert answer["end_token"] == "<|im_end|>"
            assert answer["prompt_tokens"] == answer["hf_prompt_tokens"]
            assert answer["text"] == "Here it is."
            # Read with the reference answer, the model puts <|im_end|> first after it.
            assert answer["reference_end"]["end_token"] == "<|im_end|>"
            assert answer["reference_end"]["first_choice"] == "<|im_end|>"
            assert answer["reference_end"]["end_probability"] > 0.5
        for served in result["served"]:
            assert served["finish_reason"] == "stop"
            assert served["prompt_tokens"] == served["hf_prompt_tokens"]
            assert served["text"] == "Here it is."
    assert (run_dir / "smoke" / "logs" / "server-q8_0.log").is_file()


@pytest.mark.slow
@pytest.mark.xdist_group("export-tiny-qwen2")
def test_an_adapter_that_changes_nothing_fails(exported_run, tiny_qwen2, tmp_path):
    """A LoRA whose B matrices are zero (peft's initialisation: never trained) changes no
    answer: base and base + adapter answer alike, and the export fails."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from runner import llamacpp
    from runner.prompt.template import load_template
    from tests.export.conftest import LORA_TARGETS

    run_dir, _, _ = exported_run
    untrained = tmp_path / "untrained"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen2))
    config = LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(str(untrained))
    adapter = llamacpp.convert_lora(untrained, tiny_qwen2, tmp_path / "untrained.gguf", "f16")
    base = next((run_dir / "gguf").glob("*-base-f16.gguf"))
    template = load_template("chatml", tokenizer_dir=run_dir / "merged")
    prompts = [
        template.render([{"role": "user", "content": p}], add_generation_prompt=True)
        for p in ("Say hi.", "Add two numbers.")
    ]
    result = SmokeResult("lora-f16", loads=True)
    result.answers = [
        {"text": g.text}
        for g in llamacpp.generate_chat(base, prompts, 8, n_ctx=128, lora_path=adapter)
    ]
    adapter_test(result, SmokeTarget("lora-f16", base, adapter), prompts, 8, 128, None)
    assert result.adapter_differs is False
    assert any("the adapter changes nothing" in f for f in result.failures)


@pytest.mark.slow
@pytest.mark.xdist_group("export-tiny-qwen2")
def test_an_untrained_model_is_reported_as_never_stopping(exported_run, tiny_qwen2):
    from transformers import AutoTokenizer

    from runner.prompt.template import load_template

    run_dir, _, _ = exported_run
    base_gguf = next((run_dir / "gguf").glob("*-base-f16.gguf"))
    template = load_template("chatml", tokenizer_dir=run_dir / "merged")
    prompt = template.render([{"role": "user", "content": "Say hi."}], add_generation_prompt=True)
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "merged"))

    def untrained(**options):
        [result] = smoke_test(
            [SmokeTarget("base-f16", base_gguf)],
            [prompt],
            tokenizer,
            max_new_tokens=8,
            require_stop=True,
            **options,
        )
        return result

    result = untrained()
    assert result.loads
    assert any(
        "did not stop on an end token within 8 tokens (length)" in f for f in result.failures
    )
    # Tested where the reference answer ends, the untrained model fails too: its first choice
    # there is not <|im_end|>.
    conversation = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]
    full = template.render(conversation)
    assert full.startswith(prompt) and full.endswith("Hi.<|im_end|>\n")
    result = untrained(references=[full], stop_test="reference")
    ends = result.answers[0]["reference_end"]
    assert ends["end_token"] == "<|im_end|>" and ends["answer_tokens"] == 2
    assert ends["first_choice_ends"] is False and ends["end_probability"] < 0.01
    assert ends["end_rank"] > 100  # untrained: far down the vocabulary
    [failure] = result.failures
    assert f"the model puts '<|im_end|>' at rank {ends['end_rank']} " in failure


def test_a_file_that_does_not_load_is_a_result_not_a_crash(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    junk = tmp_path / "junk-q8_0.gguf"
    junk.write_bytes(b"GGUF but not really")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0}, "a")))
    [result] = smoke_test(
        [SmokeTarget("q8_0", junk)], ["a"], tokenizer, max_new_tokens=4, require_stop=True
    )
    assert not result.loads
    assert "llama.cpp could not run" in result.error


def _gen(text="ok", finish="stop", end="<|im_end|>", prompt_tokens=10):
    return Generation(text, finish, prompt_tokens, 3, end_token=end if finish == "stop" else None)


@pytest.mark.parametrize(
    ("gen", "hf_tokens", "expected"),
    [
        (_gen(), 10, []),
        (_gen(text="  "), 10, ["produced no text"]),
        (
            _gen(finish="length"),
            10,
            [
                "did not stop on an end token within 3 tokens (length); was the end-of-turn token trained?"
            ],
        ),
        (
            _gen(text="ok<|im_start|>user"),
            10,
            ["literal special tokens in the answer: <|im_start|>"],
        ),
        (
            _gen(prompt_tokens=11),
            10,
            [
                "llama.cpp reads the prompt as 11 tokens, the Hugging Face tokenizer as 10: "
                "inference does not see what training saw"
            ],
        ),
    ],
)
def test_answer_checks(gen, hf_tokens, expected):
    failures, record = check_answer(gen, ["<|im_start|>", "<|im_end|>"], hf_tokens, True)
    assert failures == expected
    assert record["hf_prompt_tokens"] == hf_tokens


def _ends(first="<|im_end|>", ends=True, p=0.8, rank=1, start=1e-8):
    return {
        "answer_tokens": 5,
        "end_token": "<|im_end|>",
        "first_choice": first,
        "first_choice_ends": ends,
        "end_probability": p,
        "end_rank": rank,
        "start_probability": start,
    }


@pytest.mark.parametrize(
    ("finish", "reference_end", "expected"),
    [
        # The greedy answer ran on, but the model ends where the reference ends: passes.
        ("length", _ends(), []),
        # Second at the end, but 180 times likelier there than right after the prompt (qi's
        # tiny model): it learned where its turns end.
        ("stop", _ends("```", ends=False, p=0.18, rank=2, start=0.001), []),
        # Second at the end and as likely right after the prompt (hyperswitch's tiny model after
        # 80 steps: <|EOT|> after any newline): it did not.
        (
            "stop",
            _ends("```", ends=False, p=0.15, rank=2, start=0.17),
            [
                "after the reference answer the model puts '<|im_end|>' at rank 2 (p=0.15, "
                "first: '```'; right after the prompt p=0.17); was the end-of-turn token trained?"
            ],
        ),
        (
            "stop",
            _ends("def", ends=False, p=0.01, rank=4),
            [
                "after the reference answer the model puts '<|im_end|>' at rank 4 (p=0.01, "
                "first: 'def'; right after the prompt p=1e-08); was the end-of-turn token trained?"
            ],
        ),
        (
            "stop",
            None,
            [
                "no reference answer with an end-of-generation token of this GGUF after it "
                "(the prompt has no reference answer, or the chat template renders none): the "
                "end of a turn cannot be tested"
            ],
        ),
    ],
)
def test_stop_test_reference_reads_the_end_of_the_reference_answer(finish, reference_end, expected):
    gen = _gen(finish=finish)
    gen.reference_end = reference_end
    failures, record = check_answer(gen, [], 10, True, stop_test="reference")
    assert failures == expected
    assert record["checks"]["stopped_on_end_token"] is (finish == "stop")
    if reference_end is not None:
        assert record["checks"]["ends_after_reference"] is (expected == [])
        assert record["reference_end"] == reference_end


def test_stop_test_answer_records_the_reference_end_without_requiring_it():
    gen = _gen()
    gen.reference_end = _ends("def", ends=False, p=0.01, rank=40)
    failures, record = check_answer(gen, [], 10, True)
    assert failures == []
    assert record["checks"]["ends_after_reference"] is False


def test_reference_texts_are_the_conversations_training_rendered():
    from runner.dataset import Conversation
    from runner.export.smoke import reference_texts
    from runner.prompt.template import load_template

    template = load_template("chatml", bos_token=None, eos_token="<|endoftext|>")
    case = Conversation(
        "a",
        [{"role": "user", "content": "Add."}, {"role": "assistant", "content": "a + b"}],
    )
    prompt = template.render(case.prompt, add_generation_prompt=True)
    [full] = reference_texts(template, [case], [prompt])
    assert full == prompt + "a + b<|im_end|>\n"
    # A prompt the whole conversation does not start with cannot be lined up with it.
    assert reference_texts(template, [case], ["something else"]) == [None]
    # Nor can a prompt without a reference answer.
    bare = Conversation("b", [{"role": "user", "content": "Add."}])
    assert reference_texts(template, [bare], [prompt]) == [None]


def test_stopping_is_not_required_when_the_recipe_says_so():
    failures, record = check_answer(_gen(finish="length"), [], 10, require_stop=False)
    assert failures == []
    assert record["checks"]["stopped_on_end_token"] is False


def test_targets_pair_the_adapter_with_its_base(tmp_path):
    for kind in ("f16", "q8_0", "lora-f16", "base-f16"):
        (tmp_path / f"my-model-{kind}.gguf").write_bytes(b"")
    targets = {t.kind: t for t in find_targets(tmp_path)}
    assert set(targets) == {"f16", "q8_0", "lora-f16"}
    assert targets["lora-f16"].model.name == "my-model-base-f16.gguf"
    assert targets["lora-f16"].adapter.name == "my-model-lora-f16.gguf"


def test_no_held_out_prompts_fails_with_a_reason(tmp_path):
    from runner.errors import StageError
    from tests.helpers import recipe_of, run_stage, stage_context

    recipe = recipe_of({"export": [{"type": "lora_gguf"}]}, tmp_path / "recipe")
    run_dir = tmp_path / "run"
    for folder in ("data", "train", "gguf"):
        (run_dir / folder).mkdir(parents=True)
    (run_dir / "data" / "train.jsonl").write_text("{}\n")
    (run_dir / "gguf" / "t-f16.gguf").write_bytes(b"")
    from runner.prompt.template import load_template, save_template

    save_template(
        load_template("chatml", bos_token=None, eos_token="<|endoftext|>"), run_dir / "train"
    )
    with pytest.raises(StageError, match="no usable test.jsonl or val.jsonl"):
        run_stage(smoke.run, recipe, stage_context(run_dir, "smoke"))


def _completion(text="Here it is.", finish="stop", prompt_tokens=10):
    return {
        "choices": [{"message": {"content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 4},
    }


@pytest.mark.parametrize(
    ("asked", "bare", "expected"),
    [
        (_completion(), _completion(), []),
        (_completion(finish="length"), _completion(finish="length"), ["did not stop (length)"]),
        (
            # Stopped by a stop string: without it the model runs on.
            _completion(text="Here"),
            _completion(text="Here<|im_start|>user", finish="length"),
            [
                "without the Modelfile's stop strings the answer does not end the same way "
                "(length): it stopped on a stop string, not on the end-of-turn token"
            ],
        ),
        (
            _completion(prompt_tokens=11),
            _completion(prompt_tokens=11),
            [
                "the server reads the prompt as 11 tokens, the Hugging Face tokenizer as 10: "
                "its chat template does not render what training saw"
            ],
        ),
    ],
)
def test_served_answer_checks(asked, bare, expected):
    failures, record = check_served(asked, bare, 10, ["<|im_end|>", "<|im_start|>"])
    assert failures == expected
    assert record["prompt_tokens"] == asked["usage"]["prompt_tokens"]


def test_server_request_carries_the_modelfile_parameters(tmp_path):
    from tests.helpers import recipe_of

    exports = [
        {"type": "merge"},
        {"type": "gguf"},
        {
            "type": "ollama",
            "model": "m:1",
            "parameters": {"temperature": 0.2, "top_k": 40, "num_predict": 16, "seed": 7},
        },
    ]
    target = recipe_of({"export": exports}, tmp_path).exports("ollama")[0]
    assert server_request(target, 64) == {
        "max_tokens": 16,
        "temperature": 0.2,
        "seed": 7,
        "top_k": 40,
    }
    # Without a Modelfile: greedy and seeded.
    assert server_request(None, 64) == {"max_tokens": 64, "temperature": 0.0, "seed": 0}


def test_the_default_token_limit_follows_the_longest_reference_answer():
    from transformers import AutoTokenizer

    from runner.dataset import Conversation
    from runner.export.smoke import answer_budget
    from runner.models import resolve_base

    tokenizer = AutoTokenizer.from_pretrained(resolve_base("tiny:qwen2"))

    def case(answer):
        messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]
        return Conversation("x", messages)

    assert answer_budget(tokenizer, [case("short")]) == 64
    long_answer = "def f(x):\n    return x + 1\n" * 40
    tokens = len(tokenizer(long_answer, add_special_tokens=False)["input_ids"])
    assert answer_budget(tokenizer, [case("short"), case(long_answer)]) == tokens * 3 // 2 + 32


def test_prompts_from_train_asks_training_prompts(tmp_path):
    """`eval.smoke.prompts_from: train` (what --laptop sets) needs no held-out split: the
    prompts are training rows; a GGUF that does not load is still a failure with its reason."""
    import shutil

    from runner.errors import StageError
    from runner.models import resolve_base
    from runner.prompt.template import load_template, save_template
    from tests.helpers import recipe_of, run_stage, stage_context

    recipe = recipe_of({"eval": {"smoke": {"prompts_from": "train"}}}, tmp_path / "recipe")
    run_dir = tmp_path / "run"
    for folder in ("data", "train", "gguf"):
        (run_dir / folder).mkdir(parents=True)
    row = {
        "id": "a",
        "messages": [
            {"role": "user", "content": "Say hi."},
            {"role": "assistant", "content": "Hi."},
        ],
    }
    (run_dir / "data" / "train.jsonl").write_text(json.dumps(row) + "\n")
    (run_dir / "gguf" / "t-f16.gguf").write_bytes(b"")
    tiny = resolve_base("tiny:qwen2")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, run_dir / "train" / name)
    save_template(
        load_template("chatml", bos_token=None, eos_token="<|endoftext|>"), run_dir / "train"
    )
    ctx = stage_context(run_dir, "smoke")
    with pytest.raises(StageError, match="f16: does not load"):
        run_stage(smoke.run, recipe, ctx)
    report = json.loads((ctx.out / "smoke.json").read_text())
    assert report["prompts_from"] == "train.jsonl" and report["prompt_ids"] == ["a"]
