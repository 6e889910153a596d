"""Stages read only what they declare; their keys are built from exactly that; defaults have
one source."""

from __future__ import annotations

import json

import pytest

from runner.pipeline import view
from runner.run.context import StageContext, UndeclaredRead
from runner.run.keys import compute_keys
from runner.run.stages import SPECS, enabled_stages
from tests.helpers import recipe_of


def test_a_stage_cannot_read_a_recipe_key_it_does_not_declare(tmp_path):
    recipe = recipe_of({}, tmp_path)
    data = view(recipe, "data")
    assert data.model.base == "tiny:qwen2"  # declared: model.base
    assert data.split.seed == 42  # declared: the whole split section
    with pytest.raises(UndeclaredRead, match="recipe key 'model.quantization'"):
        data.model.quantization  # noqa: B018
    with pytest.raises(UndeclaredRead, match="recipe key 'lora'"):
        data.lora  # noqa: B018
    with pytest.raises(UndeclaredRead, match="`export: - type: gguf`"):
        data.exports("gguf")


def test_a_stage_cannot_read_a_stage_folder_it_does_not_declare(tmp_path):
    ctx = StageContext("smoke", tmp_path / "out", tmp_path, inputs={"gguf": tmp_path / "g"})
    assert ctx.input("gguf") == tmp_path / "g"
    with pytest.raises(UndeclaredRead, match="read the merge stage's output without declaring"):
        ctx.input("merge")


def test_every_stage_declares_only_real_keys_and_stages(tmp_path):
    from runner.recipe.load import parse_key
    from runner.recipe.schema import Recipe
    from runner.recipe.walk import node_at

    recipe = recipe_of({}, tmp_path)
    for spec in SPECS.values():
        for key in spec.reads:
            # A key of the schema (an optional section such as `continue_from` may be unset).
            assert node_at(Recipe, parse_key(key), recipe.to_dict()) is not None, key
        with pytest.raises(AssertionError):
            assert node_at(Recipe, parse_key("continue_from.rn"), recipe.to_dict()) is not None
        assert set(spec.after) <= set(SPECS) and spec.name not in spec.after
        # Upstream stages come first: a key chains only keys already computed.
        assert all(list(SPECS).index(d) < list(SPECS).index(spec.name) for d in spec.after)


def test_the_dataset_does_not_depend_on_how_the_base_is_loaded(tmp_path):
    plain = recipe_of({}, tmp_path)
    qlora = recipe_of({"model": {"base": "tiny:qwen2", "quantization": "8bit"}}, tmp_path)
    stages = enabled_stages(plain)
    a = compute_keys(plain, stages, None, save=False).keys
    b = compute_keys(qlora, stages, None, save=False).keys
    assert a["data"] == b["data"]
    assert a["train"] != b["train"]


def test_defaults_have_one_source(tmp_path):
    """`eval.enabled` and `split.val` once had a second default in stage code."""
    from runner.train.plan import train_plan

    recipe = recipe_of({}, tmp_path)
    assert recipe.eval.enabled is True
    assert "eval" in enabled_stages(recipe)
    assert recipe.split.val == 0.05
    config = train_plan(view(recipe, "train"))["axolotl"]
    assert config["test_datasets"][0]["path"] == "data/val.jsonl"
    assert "val_set_size" not in config


def write_t5(folder, **extra):
    folder.mkdir()
    config = {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "is_encoder_decoder": True,
        **extra,
    }
    (folder / "config.json").write_text(json.dumps(config))


def test_an_encoder_decoder_base_is_refused_at_validate_time(tmp_path, capsys):
    from runner.cli import main

    write_t5(tmp_path / "flan-t5")
    (tmp_path / "data.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "recipe: 1\nname: t5\nsources:\n  - type: instructions\n    path: data.jsonl\n"
        "model:\n  base: ./flan-t5\n"
    )
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert ":7:3: model.base:" in err
    assert "is an encoder-decoder model (T5ForConditionalGeneration, model_type 't5')" in err
    assert "Axolotl fine-tunes decoder-only causal language models" in err


@pytest.mark.parametrize(
    ("config", "refused"),
    [
        ({"architectures": ["BertForMaskedLM"], "model_type": "bert"}, "not a causal"),
        ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}, None),
        ({"architectures": ["MyForCausalLM"], "model_type": "custom"}, None),  # remote code
        ({"model_type": "t5"}, "no causal language-model class"),
        ({"model_type": "llama"}, None),
    ],
)
def test_trainable_architectures(config, refused):
    from runner.models.trainable import config_reason

    reason = config_reason(config, "m")
    assert (reason is None) if refused is None else (refused in reason)


def test_a_hub_base_is_refused_when_the_run_starts(tmp_path, monkeypatch):
    from runner.errors import UserError
    from runner.models import resolve
    from runner.train import stage

    write_t5(tmp_path / "snapshot")
    monkeypatch.setattr(resolve, "_from_hf_cache", lambda repo, revision: tmp_path / "snapshot")
    recipe = recipe_of({"model": {"base": "google/flan-t5-base"}}, tmp_path)
    with pytest.raises(UserError, match="model.base: .* is an encoder-decoder model"):
        stage.preflight(view(recipe, "train"))
