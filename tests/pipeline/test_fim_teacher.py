"""End to end: a tiny model trained with fill-in-the-middle rows, then used as a real teacher.

One real chain (data -> Axolotl train -> merge -> GGUF -> Modelfile -> smoke) on
``tiny:deepseek-coder`` (the real DeepSeek-Coder vocabulary, with its FIM tokens): chat rows from
the quickstart instructions and infill rows from a small Python repository train in one Axolotl
run, the infill rows with their middle and end token trained (Axolotl ``input_output``). The
smoke stage fails the run unless every GGUF answers infill prompts through llama.cpp and stops
on <|EOT|> (prompts of training rows: a random tiny model cannot generalize to held-out middles,
as under --laptop; the format and the stop are what is tested). Trained on the prompt too (as
Axolotl's ``completion`` type does), the tiny model wrote <｜fim▁end｜> after 2 middles of 3. The
Modelfile's ``{{ .Suffix }}`` branch, rendered by Go's text/template as Ollama does, must write
exactly the prompt of a training row.

The trained GGUF then serves as the teacher of another recipe through llama.cpp's own
OpenAI-compatible server (``python -m llama_cpp.server``) on 127.0.0.1: its answers become
examples; with the server stopped, the recipe rebuilds the same dataset from the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from runner.llamacpp.server import free_port
from tests.export.conftest import go_render  # noqa: F401  (a fixture)
from tests.pipeline.conftest import TINY_DEEPSEEK_TRAIN

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fim-teacher")]

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "datasets" / "quickstart" / "instructions.jsonl"
EOT = "<|EOT|>"


def write_repo(folder: Path, count: int) -> Path:
    """``count`` small Python modules of the same shape (short holes the tiny model can learn).

    No digit follows a space: llama.cpp's deepseek-coder pre-tokenizer reads `` = 0`` as
    ``' = ', '0'`` where the Hugging Face tokenizer reads ``' =', ' ', '0'``; the smoke test
    records that known re-split (tests/export/test_prompt_tokens.py), and the prompt token
    counts this test compares stay equal without it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"mod_{i:02d}.py").write_text(
            f'"""Helpers of module m{i}."""\n\n\n'
            f"def scale_{i}(values, factor):\n"
            f"    total = factor - factor\n"
            f"    for value in values:\n"
            f"        total += value * factor\n"
            f"    return total\n\n\n"
            f"def name_{i}(text):\n"
            f"    return text.strip().lower() + '_{i}'\n",
            encoding="utf-8",
        )
    return folder


RECIPE = {
    "recipe": 1,
    "name": "fim-tiny",
    "sources": [
        {"type": "instructions", "name": "snippets", "path": str(DATA), "format": "alpaca"},
        {
            "type": "repo",
            "name": "helpers",
            "path": "REPO",
            "extract": [{"type": "fill_in_middle", "rate": 1.0, "mode": "psm", "span": "syntax"}],
        },
    ],
    "filters": [{"type": "exact_dedupe"}],
    "split": {"train": 0.8, "val": 0.1, "test": 0.1},
    "prompt": {"template": "deepseek-coder"},
    "model": {"base": "tiny:deepseek-coder"},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
    # The deepseek-eot test's training, a little longer: the tiny model learns to end its chat
    # answers and its infill middles.
    "train": {"epochs": 8, **TINY_DEEPSEEK_TRAIN},
    "export": [
        {"type": "merge"},
        {"type": "gguf", "outtype": "f16", "quantize": []},
        {"type": "ollama", "model": "fim-tiny:1", "from": "f16", "create": "never"},
    ],
    "eval": {"smoke": {"prompts_from": "train"}},
}


@pytest.fixture(scope="module")
def fim_run(tmp_path_factory):
    from runner.pipeline import run_pipeline
    from runner.recipe.load import load_recipe

    root = tmp_path_factory.mktemp("fim-tiny")
    spec = json.loads(json.dumps(RECIPE))
    spec["sources"][1]["path"] = str(write_repo(root / "repo", 40))
    path = root / "fim-tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    recipe = load_recipe(path, [])
    start = time.monotonic()
    # Up to the Modelfile: the suffix branch and the teacher need no smoke test; the infill
    # test runs the smoke stage on this run itself.
    result = run_pipeline(recipe, until="ollama", root=root / "runs", say=lambda m: None)
    print(f"fim pipeline to the Modelfile: {time.monotonic() - start:.0f}s")
    if result.error is not None:
        raise result.error
    result.recipe_for_smoke = (recipe, root / "runs")
    return result


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_infill_trains_beside_chat_and_the_gguf_stops(fim_run):
    from runner.pipeline import run_pipeline

    recipe, runs = fim_run.recipe_for_smoke
    smoked = run_pipeline(recipe, until="smoke", root=runs, say=lambda m: None)
    if smoked.error is not None:
        raise smoked.error
    run_dir = smoked.run_dir
    cfg = yaml.safe_load((run_dir / "train" / "axolotl.yaml").read_text())
    assert [d["type"] for d in cfg["datasets"]] == ["chat_template", "input_output"]
    fim_rows = rows(run_dir / "data" / "train.fim.jsonl")
    assert len(fim_rows) >= 10
    # A FIM row is the prompt (prefix, hole, suffix, middle marker) and the middle as its answer.
    assert all(r["messages"][0]["content"].startswith("<｜fim▁begin｜>") for r in fim_rows)
    # Axolotl reads them as segments: BOS and the prompt untrained, the middle and <|EOT|> (the
    # trained tokenizer's eos) trained.
    middles = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in fim_rows}
    for row in rows(run_dir / "train" / "data" / "train.fim.jsonl"):
        prompt, middle = row["segments"]
        assert prompt["label"] is False and middle["label"] is True
        assert prompt["text"].startswith("<｜begin▁of▁sentence｜><｜fim▁begin｜>")
        assert (
            middle["text"] == middles[prompt["text"].removeprefix("<｜begin▁of▁sentence｜>")] + EOT
        )

    smoke = json.loads((run_dir / "smoke" / "smoke.json").read_text())
    infill = smoke["infill"]
    assert infill["failures"] == []
    answers = [a for m in infill["models"].values() for a in m["answers"]]
    assert answers and all(m["loads"] for m in infill["models"].values())
    for answer in answers:
        assert answer["finish_reason"] == "stop" and answer["end_token"] == EOT, answer
        assert answer["checks"]["stopped_on_end_token"]
        assert answer["checks"]["ends_after_reference"], answer["reference_end"]
        assert answer["prompt_tokens"] == answer["hf_prompt_tokens"]  # read as in training
    print("infill answers:", [(a["middle"], a["text"]) for a in answers])


def test_the_modelfile_suffix_branch_writes_the_training_prompt(fim_run, go_render):  # noqa: F811
    import re

    from runner.prompt.fim import read_fim

    run_dir = fim_run.run_dir
    fim = read_fim(run_dir / "train")
    assert (fim.family, fim.mode) == ("deepseek-coder", "psm")
    modelfile = (run_dir / "ollama" / "Modelfile").read_text()
    (template,) = re.findall(r'^TEMPLATE """(.*?)"""$', modelfile, flags=re.S | re.M)
    fim_rows = rows(run_dir / "data" / "train.fim.jsonl")
    cases, expected = [], []
    for row in fim_rows[:4]:
        prompt = row["messages"][0]["content"]  # the row without its middle
        assert prompt.endswith(fim.middle)
        before, after = fim.split_prompt(prompt)
        cases.append({"prompt": before, "suffix": after})
        expected.append(prompt)
    assert go_render(template, cases) == expected


# --- the trained GGUF as a real teacher through llama.cpp's server ---------------------------


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1, started and stopped by the test."""

    def __init__(self, model: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        argv = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            "tiny-teacher",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "1024",
        ]
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            argv, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ
        )

    def wait(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "llama_cpp.server exited; see its log"
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise AssertionError("llama_cpp.server did not answer within 120 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def teacher_recipe(tmp_path: Path, base_url: str):
    from tests.helpers import recipe_of

    repo = write_repo(tmp_path / "taught", 3)
    config = {
        "sources": [
            {
                "type": "repo",
                "path": str(repo),
                "extract": [{"type": "teacher", "task": "explain"}],
            }
        ],
        "teacher": {
            "base_url": base_url,
            "model": "tiny-teacher",
            "max_tokens": 64,
            "timeout": 60,
            "retries": 1,
            "backoff": 0.1,
            "concurrency": 1,
            "cache_dir": str(tmp_path / "teacher-cache"),
        },
        "split": {"train": 1.0, "val": 0.0, "test": 0.0},
        "eval": {"enabled": False},
        "train": {"seq_len": 512},
    }
    return recipe_of(config, tmp_path)


def build_data(recipe, run_dir: Path) -> Path:
    from runner.data import build
    from tests.helpers import run_stage, stage_context

    ctx = stage_context(run_dir, "data")
    run_stage(build.run, recipe, ctx)
    return ctx.out


def test_a_real_teacher_answers_then_the_cache_rebuilds_without_it(fim_run, tmp_path):
    (gguf,) = sorted((fim_run.run_dir / "gguf").glob("*-f16.gguf"))
    server = LlamaServer(gguf, tmp_path / "server.log")
    try:
        server.wait()
        recipe = teacher_recipe(tmp_path, server.url)
        first = build_data(recipe, tmp_path / "run1")
    finally:
        server.stop()
    report = json.loads((first / "report.json").read_text())["teacher"]
    taught = [r for r in rows(first / "train.jsonl") if r["meta"].get("task") == "teacher"]
    rejected = [r for r in rows(first / "rejected.jsonl") if r["stage"] == "extract:teacher"]
    print("teacher outcomes:", report["outcomes"], [r["reason"] for r in rejected])
    # 3 files x 2 functions asked once each; every question has an outcome.
    assert report["requests_sent"] >= 6
    assert len(taught) + len(rejected) == 6
    assert taught, "the trained tiny model answered no question within 64 tokens"
    for row in taught:
        assert row["meta"]["teacher"] == "tiny-teacher"
        assert row["messages"][-1]["content"].strip()
        assert "def " in row["messages"][-2]["content"]

    # The server is gone; a fresh run folder rebuilds the same dataset from the cache.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/models", timeout=2)
    second = build_data(recipe, tmp_path / "run2")
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "rejected.jsonl"):
        if (first / name).exists():
            assert (second / name).read_bytes() == (first / name).read_bytes(), name
    again = json.loads((second / "report.json").read_text())["teacher"]
    # Every completion the server sent (usable or not) was cached; nothing is asked again.
    assert again["requests_sent"] == 0 and again["outcomes"]["cached"] >= len(taught)
