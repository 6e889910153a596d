"""Reading Axolotl's training output: step/total/ETA, losses, NaN stop, resume."""

from __future__ import annotations

import math
import re

import pytest

from runner.train.progress import NanLoss, TrainProgress

# Lines as Axolotl 0.19 / transformers 5 print them (taken from a real CPU run's log).
BAR = " 40%|████      | 4/10 [00:13<00:21,  3.58s/it]"
LOSS = "{'loss': '11.57', 'grad_norm': '2.472', 'learning_rate': '0.0012', 'epoch': '0.4'}"
MAP_BAR = (
    "Dropping Long Sequences (num_proc=2): 100%|██████████| 40/40 [00:00<00:00, 212.18 examples/s]"
)


def test_bar_and_loss():
    p = TrainProgress()
    assert p.feed(BAR)
    assert (p.step, p.total, p.eta) == (4, 10, "00:21")
    assert p.feed(LOSS)
    assert p.losses == [{"step": 4, "loss": 11.57, "epoch": 0.4}]


def test_unquoted_numbers_from_older_trainers():
    p = TrainProgress()
    p.feed("{'loss': 2.3456, 'grad_norm': 1.0, 'learning_rate': 0.0002, 'epoch': 0.5}")
    assert p.last_loss == 2.3456


@pytest.mark.parametrize(
    "line",
    [
        MAP_BAR,
        "{'train_runtime': '34.88', 'train_loss': '11.47', 'epoch': '1'}",
        "{'eval_loss': '11.2', 'epoch': '1'}",
        "[2026-11-21 23:16:01,582] [INFO] [axolotl.utils.tokenization] Count of labels: 20",
    ],
)
def test_other_lines_change_nothing(line):
    p = TrainProgress()
    assert not p.feed(line)
    assert p.step == 0 and p.losses == []


def test_eval_bars_of_another_length_are_ignored():
    p = TrainProgress()
    p.feed(BAR)
    assert not p.feed("100%|██████████| 2/2 [00:00<00:00,  5.00it/s]")
    assert (p.step, p.total) == (4, 10)


@pytest.mark.parametrize("value", ["nan", "'nan'", "inf", "'-inf'"])
def test_first_nan_loss_stops_with_a_clear_message(value):
    p = TrainProgress()
    p.feed(BAR)
    with pytest.raises(NanLoss) as err:
        p.feed(f"{{'loss': {value}, 'grad_norm': 'nan', 'epoch': '0.4'}}")
    assert "loss became" in str(err.value) and "at step 4" in str(err.value)
    assert "train.learning_rate" in str(err.value)
    assert not math.isfinite(p.losses[-1]["loss"])


def test_resume_line():
    p = TrainProgress()
    p.feed(
        "[2026-11-21 23:16:01,582] [INFO] [axolotl.utils.train] Using auto-resume functionality "
        "to resume from checkpoint at /runs/x/stages/.partial/train-abc/checkpoint-4"
    )
    assert p.resumed_from.endswith("checkpoint-4")


def test_plain_lines_without_a_terminal_one_per_tenth():
    import io

    from runner.train.stage import PlainProgress

    out = io.StringIO()
    lines = PlainProgress(out, enabled=True)
    progress = TrainProgress()
    for step in range(1, 21):
        progress.feed(
            f" {step * 5}%|##   | {step}/20 [00:{step:02d}<00:{20 - step:02d},  1.00it/s]"
        )
        progress.feed(f"{{'loss': {2.0 - step * 0.05:.2f}, 'epoch': {step / 20}}}")
        lines.update(progress)
    printed = out.getvalue().splitlines()
    # The first logged step (training has started), then each tenth.
    assert len(printed) == 11
    assert printed[0] == "train: step 1/20, loss 1.9500, eta 00:19"
    assert printed[1] == "train: step 2/20, loss 1.9000, eta 00:18"
    assert printed[-1] == "train: step 20/20, loss 1.0000"
    silent = io.StringIO()
    PlainProgress(silent, enabled=False).update(progress)
    assert silent.getvalue() == ""


def test_the_plugins_step_lines_give_step_total_and_eta():
    from runner.train.plugin import STEP_LINE

    p = TrainProgress()
    assert p.feed(STEP_LINE.format(step=1, total=10, eta="?"))
    assert (p.step, p.total, p.eta) == (1, 10, "")
    assert p.feed(STEP_LINE.format(step=4, total=10, eta="00:21"))
    assert (p.step, p.total, p.eta) == (4, 10, "00:21")
    p.feed(LOSS)
    assert p.losses[-1]["step"] == 4


def test_the_step_callback_prints_what_the_stage_reads(capsys):
    """The callback Axolotl gets from the plugin, driven as the Hugging Face trainer drives it."""
    from types import SimpleNamespace

    from runner.train.plugin import RecipeRunnerChecks

    (callback,) = RecipeRunnerChecks().add_callbacks_post_trainer({}, trainer=None)
    state = SimpleNamespace(global_step=3, max_steps=10, is_world_process_zero=True)
    callback.on_train_begin(None, state, None)  # resumed at step 3
    for step in (4, 5):
        state.global_step = step
        callback.on_step_end(None, state, None)
    p = TrainProgress()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(p.feed(line) for line in lines)
    assert (p.step, p.total) == (5, 10)
    assert re.fullmatch(r"\d\d:\d\d", p.eta)
