"""Label checks on tokenized data and the pad/end-of-turn check, on a real tokenizer."""

from __future__ import annotations

import pytest

from runner.errors import StageError
from runner.train import labels as train_labels

EOT = 9
N = train_labels.IGNORE


@pytest.mark.parametrize(
    "input_ids, labels, bad",
    [
        ([1, 2, 3, 9, 5], [N, N, 3, 9, N], None),  # one trained turn ending on the end token
        ([1, 2, 9, 4, 5, 9], [N, 2, 9, N, 5, 9], None),  # two turns
        ([1, 2, 3, 9, 5], [N, N, 3, N, N], "a trained turn ends with token id 3"),  # EOT masked
        ([1, 2, 9, 4, 5, 9], [N, 2, 9, N, 5, N], "a trained turn ends with token id 5"),
        ([1, 2, 3], [N, N, N], "no token carries loss"),
        ([1, 2, 3, 9], [N, 2, 3, 9], None),  # span running to the end
    ],
)
def test_check_labels(input_ids, labels, bad):
    report = train_labels.check_labels([(input_ids, labels)], {EOT})
    if bad is None:
        assert report.problem() is None
    else:
        assert report.bad_rows[0]["why"] == bad
        assert "the model would not learn to stop" in report.problem()


def test_no_rows_is_a_problem():
    assert "no rows" in train_labels.check_labels([], {EOT}).problem()


@pytest.fixture(scope="module")
def qwen_tokenizer():
    from transformers import AutoTokenizer

    from runner.models import resolve_base

    return AutoTokenizer.from_pretrained(str(resolve_base("tiny:qwen2")))


def test_qwen_pad_is_not_the_chatml_end_token(qwen_tokenizer):
    # Qwen2's pad and eos are both <|endoftext|>; ChatML turns end with <|im_end|>.
    assert train_labels.pad_override(qwen_tokenizer, ["<|im_end|>"]) == (None, None)
    assert train_labels.end_token_ids(qwen_tokenizer, ["<|im_end|>"]) == {151645}


def test_a_missing_pad_token_becomes_unk_never_the_end_token():
    from transformers import AutoTokenizer

    from runner.models import resolve_base

    llama = AutoTokenizer.from_pretrained(str(resolve_base("tiny:llama")))
    llama.pad_token = llama.eos_token  # the usual "fix" that masks the end of every turn
    token, note = train_labels.pad_override(llama, ["</s>"], "[INST] {{ m.content }} [/INST]")
    assert token == "<unk>"
    assert "pads with the end-of-turn token '</s>'" in note


def test_no_free_special_token_to_pad_with_is_an_error(qwen_tokenizer):
    # The tiny Qwen2 tokenizer has three special tokens: pad, im_start and im_end.
    template = "<|im_start|>{{ m.content }}<|im_end|>"
    with pytest.raises(StageError, match="set axolotl: {special_tokens: {pad_token"):
        train_labels.pad_override(qwen_tokenizer, ["<|endoftext|>", "<|im_end|>"], template)


def test_an_end_string_of_several_tokens_is_refused(qwen_tokenizer):
    with pytest.raises(StageError, match="is 2 tokens for this tokenizer"):
        train_labels.end_token_ids(qwen_tokenizer, ["### End"])


@pytest.mark.parametrize(
    "input_ids, labels, filled, expected, passes",
    [
        # DeepSeek-Coder: answer, masked '\n', trained <|EOT|>: the '\n' is trained too.
        ([1, 2, 3, 4, 9, 4], [N, N, 3, N, 9, N], 1, [N, N, 3, 4, 9, N], True),
        ([1, 2, 3, 9, 4], [N, N, 3, 9, N], 0, [N, N, 3, 9, N], True),  # no gap (ChatML)
        # A masked prompt between two trained answers is never unmasked.
        ([1, 2, 9, 4, 5, 9], [N, 2, 9, N, 5, 9], 0, [N, 2, 9, N, 5, 9], True),
        (
            [1, 2, 4, 4, 4, 4, 9],
            [N, 2, N, N, N, N, 9],
            0,
            [N, 2, N, N, N, N, 9],
            False,
        ),  # gap over 3
        ([1, 2, 4, 5], [N, 2, N, 5], 0, [N, 2, N, 5], False),  # the right side is no end token
    ],
)
def test_fill_end_gaps(input_ids, labels, filled, expected, passes):
    assert train_labels.fill_end_gaps(labels, input_ids, {EOT}) == (expected, filled)
    report = train_labels.check_labels([(input_ids, expected)], {EOT})
    assert (report.problem() is None) is passes


def trainer_with(rows, eval_rows=None):
    from types import SimpleNamespace

    from datasets import Dataset

    return SimpleNamespace(
        train_dataset=Dataset.from_dict(rows),
        eval_dataset=Dataset.from_dict(eval_rows) if eval_rows else None,
    )


def plugin_run(tmp_path, trainer, train_examples):
    """The plugin's hook as Axolotl calls it once the trainer exists."""
    import json

    from runner.train import plugin

    (tmp_path / plugin.SETTINGS).write_text(
        json.dumps({"end_ids": [EOT], "train_examples": train_examples})
    )
    cfg = {"output_dir": str(tmp_path)}
    try:
        plugin.RecipeRunnerChecks().post_trainer_create(cfg, trainer)
        error = None
    except RuntimeError as exc:
        error = str(exc)
    return json.loads((tmp_path / plugin.RESULT).read_text()), error


def test_the_plugin_trains_the_masked_gap_before_the_end_token(tmp_path):
    rows = {"input_ids": [[1, 2, 3, 4, 9, 4], [1, 3, 9]], "labels": [[N, N, 3, N, 9, N], [N, 3, 9]]}
    trainer = trainer_with(rows, eval_rows=rows)
    result, error = plugin_run(tmp_path, trainer, train_examples=3)
    assert error is None
    assert result == {
        "filled": 2,  # one token in each of the two datasets
        "rows": 2,
        "trained_turns": 2,
        "dropped_over_length": 1,  # three training examples, two rows left after Axolotl's drop
        "problem": None,
    }
    assert trainer.train_dataset["labels"] == [[N, N, 3, 4, 9, N], [N, 3, 9]]
    assert trainer.eval_dataset["labels"] == [[N, N, 3, 4, 9, N], [N, 3, 9]]


def test_the_plugin_stops_training_that_would_never_learn_to_stop(tmp_path):
    rows = {"input_ids": [[1, 2, 3, 4, 5]], "labels": [[N, N, 3, 4, 5]]}
    result, error = plugin_run(tmp_path, trainer_with(rows), train_examples=1)
    assert error == result["problem"]
    assert "does not end with a trained end-of-turn token" in error


def test_the_plugin_checks_config_keys_when_axolotl_reads_the_config(tmp_path):
    from runner.train import plugin

    cfg = {"output_dir": str(tmp_path), "base_model": "x", "lerning_rate": 0.1}
    with pytest.raises(RuntimeError, match="lerning_rate: not a key Axolotl"):
        plugin.RecipeRunnerChecks().register(cfg)


def test_the_plugin_passes_a_rendered_config_through_axolotls_own_loader(tmp_path):
    """What `axolotl train` does: load_cfg(config, **command-line options) calls the plugin's
    register with the options merged in; a generated config passes, a typo in it does not."""
    from dataclasses import asdict

    import yaml
    from axolotl.cli.args import TrainerCliArgs
    from axolotl.cli.config import load_cfg

    from runner.models import resolve_base
    from runner.train import handshake, plugin
    from tests.train.test_config import recipe, render

    cfg = render(recipe(), cuda=False)
    base = str(resolve_base("tiny:qwen2"))
    cfg.update(
        plugins=[handshake.PLUGIN],
        output_dir=str(tmp_path / "out"),
        base_model=base,
        tokenizer_config=base,
    )
    config = tmp_path / "axolotl.yaml"
    config.write_text(yaml.safe_dump(cfg))
    loaded = load_cfg(str(config), **asdict(TrainerCliArgs()))
    assert loaded.base_model == base  # accepted, command-line options and all
    assert not (tmp_path / "out" / plugin.RESULT).exists()  # written only on a problem here

    cfg["lerning_rate"] = 0.1
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(RuntimeError, match="lerning_rate: not a key Axolotl"):
        load_cfg(str(config), **asdict(TrainerCliArgs()))
