"""Stage caching: which stages re-run after each kind of change.

The pipeline machinery (keys, store, links, manifests, --force/--until) runs for real; the stage
functions are small recorders standing in for the heavy stages, so that every kind of change can
be tested in milliseconds. The real stages run through the same code in test_quickstart.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import pipeline
from runner.errors import StageError
from runner.run.context import Failure, Outcome
from runner.run.folder import LOCK, MANIFEST
from runner.run.stages import SPECS
from tests.helpers import recipe_of


class Recorder:
    """Stage functions that record each call and write something derived from their inputs."""

    def __init__(self):
        self.calls: list[str] = []
        self.fail: set[str] = set()

    def __call__(self, name):
        def run(recipe, ctx):
            self.calls.append(name)
            ctx.log_file.parent.mkdir(parents=True, exist_ok=True)
            ctx.log_file.write_text(f"log of {name} for {recipe.name}\n")
            if name in self.fail:
                raise StageError(name, "told to fail")
            if name == "data":
                text = Path(recipe.sources[0].path).read_text()
                (ctx.out / "train.jsonl").write_text(text)
            else:
                (ctx.out / "out.txt").write_text(f"{name} of {recipe.name}")
            return Outcome(outputs={name: "out.txt"}, notes=[f"{name} note"])

        return run


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(pipeline, "load_stage", rec)
    return rec


def make_recipe(tmp_path: Path, **changes):
    source = tmp_path / "src.jsonl"
    if not source.exists():
        source.write_text('{"instruction": "a", "output": "b"}\n')
    config = {
        "name": "demo",
        "sources": [{"type": "instructions", "path": str(source)}],
        "prompt": {"template": "chatml", "train_on": "assistant"},
        "model": {"base": "tiny:qwen2", "quantization": "none"},
        "lora": {"r": 8},
        "train": {"learning_rate": 0.001, "seed": 7},
        "compute": {"gpus": 1, "strategy": "single"},
        "axolotl": {},
        "export": [
            {"type": "merge"},
            {"type": "gguf", "quantize": ["q8_0"]},
            {
                "type": "ollama",
                "model": "demo:v1",
                "from": "q8_0",
                "parameters": {"temperature": 0},
            },
        ],
        "eval": {"enabled": False},
    }
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return recipe_of({"name": "demo", **config}, tmp_path)


def statuses(result):
    return {s.stage: s.status for s in result.stages}


def run(recipe, root, **kw):
    messages = []
    result = pipeline.run_pipeline(recipe, root=root, say=messages.append, **kw)
    return result, messages


ALL = ["data", "train", "merge", "gguf", "ollama", "smoke"]


def test_same_recipe_twice_runs_nothing_the_second_time(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    first, _ = run(recipe, tmp_path / "runs")
    assert recorder.calls == ALL
    assert set(statuses(first).values()) == {"ran"}
    recorder.calls.clear()
    second, messages = run(recipe, tmp_path / "runs")
    assert recorder.calls == []
    assert set(statuses(second).values()) == {"cached"}
    assert any(m.startswith("nothing to do") for m in messages)
    assert second.run_dir == first.run_dir


def test_changing_only_export_reruns_only_that_export(tmp_path, recorder):
    run(make_recipe(tmp_path), tmp_path / "runs")
    recorder.calls.clear()
    changed = make_recipe(tmp_path, export__2__parameters={"temperature": 0.5})
    result, _ = run(changed, tmp_path / "runs")
    # The smoke test asks the served GGUF with the Modelfile's parameters: it runs again too.
    assert recorder.calls == ["ollama", "smoke"]
    assert statuses(result)["train"] == "cached"
    # A different recipe gets its own run folder whose links reuse the finished outputs.
    assert (result.run_dir / "train").resolve() == (tmp_path / "runs/demo/stages").resolve() / (
        "train-" + result.stages[1].key[:12]
    )


def test_changing_gguf_reruns_gguf_and_what_uses_it(tmp_path, recorder):
    run(make_recipe(tmp_path), tmp_path / "runs")
    recorder.calls.clear()
    run(make_recipe(tmp_path, export__1__quantize=["q8_0", "q4_k_m"]), tmp_path / "runs")
    assert recorder.calls == ["gguf", "ollama", "smoke"]


def test_editing_a_source_file_reruns_data_and_everything_after(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    run(recipe, tmp_path / "runs")
    recorder.calls.clear()
    (tmp_path / "src.jsonl").write_text('{"instruction": "a", "output": "changed"}\n')
    result, _ = run(recipe, tmp_path / "runs")
    assert recorder.calls == ALL
    assert (result.run_dir / "data" / "train.jsonl").read_text().endswith('"changed"}\n')


def test_touching_a_source_file_without_changing_it_reruns_nothing(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    run(recipe, tmp_path / "runs")
    recorder.calls.clear()
    source = tmp_path / "src.jsonl"
    source.write_text(source.read_text())  # new mtime, same content
    run(recipe, tmp_path / "runs")
    assert recorder.calls == []


def test_changing_training_keeps_data(tmp_path, recorder):
    run(make_recipe(tmp_path), tmp_path / "runs")
    recorder.calls.clear()
    run(make_recipe(tmp_path, train__learning_rate=0.01), tmp_path / "runs")
    assert recorder.calls == ["train", "merge", "gguf", "ollama", "smoke"]


def test_changing_the_template_reruns_data_and_training(tmp_path, recorder):
    run(make_recipe(tmp_path), tmp_path / "runs")
    recorder.calls.clear()
    run(make_recipe(tmp_path, prompt__train_on="all"), tmp_path / "runs")
    assert recorder.calls == ALL


def test_force_reruns_from_that_stage(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    run(recipe, tmp_path / "runs")
    recorder.calls.clear()
    result, _ = run(recipe, tmp_path / "runs", force="gguf")
    assert recorder.calls == ["gguf", "ollama", "smoke"]
    assert statuses(result)["train"] == "cached"


def test_until_stops_after_that_stage(tmp_path, recorder):
    result, _ = run(make_recipe(tmp_path), tmp_path / "runs", until="train")
    assert recorder.calls == ["data", "train"]
    assert [s.stage for s in result.stages] == ["data", "train"]


def test_dry_run_runs_and_writes_nothing(tmp_path, recorder):
    result, messages = run(make_recipe(tmp_path), tmp_path / "runs", dry_run=True)
    assert recorder.calls == []
    assert set(statuses(result).values()) == {"would run"}
    assert not result.run_dir.exists()


def test_a_failed_stage_stops_the_run_and_finished_stages_are_reused(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    recorder.fail.add("merge")
    result, _ = run(recipe, tmp_path / "runs")
    assert statuses(result) == {"data": "ran", "train": "ran", "merge": "failed"}
    assert isinstance(result.error, StageError)
    assert not (result.run_dir / "merged").exists()
    recorder.fail.clear()
    recorder.calls.clear()
    again, _ = run(recipe, tmp_path / "runs")
    assert recorder.calls == ["merge", "gguf", "ollama", "smoke"]
    assert statuses(again)["train"] == "cached"


def test_a_stage_without_a_manifest_is_not_reused(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    result, _ = run(recipe, tmp_path / "runs", until="train")
    (result.run_dir / "train" / MANIFEST).unlink()  # as if killed between rename and manifest
    recorder.calls.clear()
    run(recipe, tmp_path / "runs", until="train")
    assert recorder.calls == ["train"]


def test_lock_file_and_latest_link(tmp_path, recorder):
    recipe = make_recipe(tmp_path)
    result, _ = run(recipe, tmp_path / "runs")
    lock = json.loads((result.run_dir / LOCK).read_text())
    assert lock["recipe"]["train"]["learning_rate"] == 0.001
    assert lock["seed"] == 7
    assert list(lock["inputs"]) == [str(tmp_path / "src.jsonl")]
    assert len(lock["inputs"][str(tmp_path / "src.jsonl")]) == 64
    assert lock["base_model"]["ref"] == "tiny:qwen2"
    assert {"python", "torch", "transformers", "axolotl", "llama-cpp-python"} <= set(
        lock["versions"]
    )
    assert lock["versions"]["axolotl"] == "0.19.0"
    assert set(lock["stages"]) == set(ALL)
    assert (tmp_path / "runs/demo/latest").resolve() == result.run_dir.resolve()
    assert result.run_dir.parent.name == "demo" and len(result.run_dir.name) == 10


def test_summaries_point_at_the_final_folder(tmp_path, recorder):
    result, _ = run(make_recipe(tmp_path), tmp_path / "runs", until="train")
    train = result.stages[1]
    assert ".partial" not in train.outputs["train"]
    assert Path(train.outputs["train"]).read_text() == "train of demo"
    manifest = json.loads((result.run_dir / "train" / MANIFEST).read_text())
    assert manifest["outcome"]["outputs"] == {"train": "out.txt"}  # relative: never rewritten
    assert train.notes == ["train note"]


def test_a_stage_whose_code_is_missing_fails_clearly(tmp_path, monkeypatch):
    from dataclasses import replace

    from runner.run import stages

    monkeypatch.setitem(
        stages.SPECS, "data", replace(stages.SPECS["data"], entry="runner.no_such_module:run")
    )
    result, _ = run(make_recipe(tmp_path), tmp_path / "runs")
    assert statuses(result) == {"data": "failed"}
    assert "the data stage is not available: cannot import runner.no_such_module" in str(
        result.error
    )


def test_until_a_stage_the_recipe_does_not_run(tmp_path, recorder):
    from runner.errors import UserError

    with pytest.raises(UserError, match="does not run the hub stage"):
        run(make_recipe(tmp_path), tmp_path / "runs", until="hub")


def test_qlora_without_cuda_stops_before_any_stage(tmp_path, recorder, monkeypatch):
    from runner.errors import UserError
    from runner.train import stage

    monkeypatch.setattr(stage, "cuda_available", lambda: False)
    recipe = make_recipe(tmp_path, model__quantization="4bit")
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        run(recipe, tmp_path / "runs")
    assert recorder.calls == []
    fallback = make_recipe(tmp_path, model__quantization="4bit", model__cpu_fallback=True)
    run(fallback, tmp_path / "runs", until="train")
    assert recorder.calls == ["data", "train"]


def test_changing_which_gguf_ollama_uses_reruns_eval(tmp_path, recorder):
    # Eval generates with the GGUF named by the ollama export's `from`: that choice is in its key.
    base = make_recipe(tmp_path, eval={"enabled": True})
    run(base, tmp_path / "runs")
    recorder.calls.clear()
    changed = make_recipe(tmp_path, eval={"enabled": True}, export__2__from="f16")
    run(changed, tmp_path / "runs")
    assert recorder.calls == ["ollama", "smoke", "eval"]


class GateRecorder(Recorder):
    """The eval stage writes its report and then misses its gate, as runner.eval.stage does."""

    def __call__(self, name):
        if name != "eval":
            return super().__call__(name)

        def run(recipe, ctx):
            self.calls.append(name)
            (ctx.out / "report.md").write_text("# report\n")
            report = ctx.run_dir / "eval" / "report.md"
            return Outcome(
                summary={"gate": {"passed": False}},
                outputs={"report.md": "report.md"},
                failure=Failure(
                    f"pass rate 0.100 < min_pass_rate 0.9 (report: {report})",
                    exit_code=3,
                    kind="gate missed",
                ),
            )

        return run


def write_recipe_file(tmp_path: Path, recipe) -> Path:
    import yaml

    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    return path


def test_a_missed_gate_keeps_the_evaluation_and_exits_3_every_time(tmp_path, monkeypatch):
    from runner import cli

    recorder = GateRecorder()
    monkeypatch.setattr(pipeline, "load_stage", recorder)
    recipe = make_recipe(tmp_path, eval={"enabled": True}, export__2__from="q8_0")
    path = write_recipe_file(tmp_path, recipe)
    argv = ["run", str(path), "--runs-dir", str(tmp_path / "runs")]
    assert cli.main(argv) == 3
    assert recorder.calls == [*ALL, "eval"]
    # The evaluation is a finished stage: renamed into place, manifest written, report linked.
    run_dir = tmp_path / "runs" / "demo" / "latest"
    assert (run_dir / "eval" / "report.md").read_text() == "# report\n"
    manifest = json.loads((run_dir / "eval" / MANIFEST).read_text())
    assert manifest["outcome"]["summary"]["gate"]["passed"] is False
    assert manifest["outcome"]["outputs"]["report.md"] == "report.md"
    assert manifest["outcome"]["failure"]["exit_code"] == 3
    assert not list((tmp_path / "runs/demo/stages/.partial").glob("eval-*"))
    # Reused, not re-run, and the gate still fails the run.
    recorder.calls.clear()
    assert cli.main(argv) == 3
    assert recorder.calls == []


def test_a_missed_gate_names_the_report_and_stops_the_run(tmp_path, monkeypatch):
    recorder = GateRecorder()
    monkeypatch.setattr(pipeline, "load_stage", recorder)
    recipe = make_recipe(tmp_path, eval={"enabled": True})
    for attempt in ("ran", "cached"):
        result, messages = run(recipe, tmp_path / "runs")
        assert isinstance(result.error, pipeline.RunFailed)
        assert result.error.exit_code == 3
        assert statuses(result)["eval"] == attempt
        assert "min_pass_rate" in result.stages[-1].error
        assert f"report: {result.run_dir / 'eval' / 'report.md'}" in str(result.error)
        assert any("GATE MISSED" in m for m in messages)


def test_a_run_folder_that_reuses_a_stage_links_its_log(tmp_path, recorder):
    first, _ = run(make_recipe(tmp_path), tmp_path / "runs")
    changed = make_recipe(tmp_path, export__2__parameters={"temperature": 0.5})
    second, _ = run(changed, tmp_path / "runs")
    assert second.run_dir != first.run_dir
    for result in (first, second):
        for name in ("data", "train", "ollama"):
            log = result.run_dir / "logs" / f"{name}.log"
            assert log.read_text() == f"log of {name} for demo\n"
            # The log lives in the stage's own folder, next to the output it explains.
            assert log.resolve().is_relative_to((result.run_dir / SPECS[name].folder).resolve())
    assert (first.run_dir / "logs/ollama.log").resolve() != (
        second.run_dir / "logs/ollama.log"
    ).resolve()


def test_the_log_of_a_failed_stage_is_in_the_run_folder(tmp_path, recorder):
    recorder.fail.add("merge")
    result, _ = run(make_recipe(tmp_path), tmp_path / "runs")
    assert (result.run_dir / "logs" / "merge.log").read_text() == "log of merge for demo\n"


def test_rebuilding_the_tiny_base_reruns_training(tmp_path, recorder, monkeypatch):
    from runner.models import tiny

    run(make_recipe(tmp_path), tmp_path / "runs")
    recorder.calls.clear()
    # A new build of the tiny model (here: another build version) has another cache key.
    monkeypatch.setattr(tiny, "BUILD_VERSION", tiny.BUILD_VERSION + 1000)
    result, _ = run(make_recipe(tmp_path), tmp_path / "runs")
    assert recorder.calls == ["train", "merge", "gguf", "ollama", "smoke"]
    assert statuses(result)["data"] == "cached"
