"""llama.cpp's prompt tokens against the Hugging Face tokenizer's, on the real DeepSeek-Coder and
Qwen2 vocabularies (llama.cpp's vocab GGUFs, and the tokenizers the tiny models are built with)."""

from __future__ import annotations

import pytest

from runner.export.prompt_tokens import compare_prompt_ids, describe
from runner.export.smoke import check_answer
from runner.llamacpp import Generation, read_metadata, token_info, vocab_gguf

CODE = "fn main() {\n    let x = 0;\n    if x == 1 { return; }\n}\n"


@pytest.fixture(scope="module")
def deepseek():
    from transformers import AutoTokenizer

    from runner.models.tiny import tiny_spec, tokenizer_dir

    vocab = vocab_gguf("deepseek-coder")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir(tiny_spec("tiny:deepseek-coder"))))
    return tokenizer, vocab, read_metadata(vocab)["tokenizer_pre"]


def test_deepseek_resplits_spaces_before_digits_and_it_is_tolerated(deepseek):
    tokenizer, vocab, pre = deepseek
    assert pre == "deepseek-coder"
    hf = tokenizer(CODE, add_special_tokens=False)["input_ids"]
    cpp = token_info(vocab, [CODE])[CODE]["ids"]
    assert hf != cpp  # llama.cpp#7036, still so in the llama.cpp this project pins
    difference = compare_prompt_ids(hf, cpp, tokenizer, pre)
    assert difference["same_text"] and not difference["special_tokens"]
    assert difference["tolerated"] and "llama.cpp#7036" in difference["reason"]
    assert difference["first"][0] == {"hugging_face": [" =", " "], "llama_cpp": [" = "]}
    # Tolerated: the answer passes, and the record keeps what differed.
    gen = Generation("ok", "stop", len(cpp), 1, end_token="<|EOT|>", prompt_ids=cpp)
    failures, record = check_answer(gen, [], len(hf), True, tokenization=difference)
    assert failures == []
    assert record["checks"]["prompt_tokens_match"] is False
    assert record["tokenization"] == difference


def test_the_same_resplit_fails_for_a_pre_tokenizer_not_known_to_differ(deepseek):
    tokenizer, vocab, _ = deepseek
    hf = tokenizer(CODE, add_special_tokens=False)["input_ids"]
    cpp = token_info(vocab, [CODE])[CODE]["ids"]
    difference = compare_prompt_ids(hf, cpp, tokenizer, "qwen2")
    assert not difference["tolerated"] and difference["reason"] is None
    gen = Generation("ok", "stop", len(cpp), 1, end_token="<|EOT|>", prompt_ids=cpp)
    [failure] = check_answer(gen, [], len(hf), True, tokenization=difference)[0]
    assert f"llama.cpp reads the prompt as {len(cpp)} tokens" in failure
    assert "first: Hugging Face [' =', ' '], llama.cpp [' = '] (the same characters" in failure


def test_a_special_token_read_as_text_is_never_tolerated(deepseek):
    tokenizer, vocab, pre = deepseek
    text = "### Instruction:\nhi\n<|EOT|>"
    hf = tokenizer(text, add_special_tokens=False)["input_ids"]
    as_text = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    difference = compare_prompt_ids(hf, as_text, tokenizer, pre)
    assert difference["special_tokens"] and not difference["tolerated"]
    assert "a special token differs" in describe(difference)


def test_the_same_tokens_are_no_difference(deepseek):
    tokenizer, vocab, pre = deepseek
    text = "def f(x):\n    return x\n"
    hf = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert compare_prompt_ids(hf, token_info(vocab, [text])[text]["ids"], tokenizer, pre) is None
