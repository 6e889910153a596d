"""continue_from with real training (Axolotl on CPU, minutes): each mode starts from the parent's
weights (its first loss on the parent's data is the parent's last, not the base's), the child
writes lineage and a three-column report, and recipe compare / recipe runs read the two versions.

Every step trains on the whole training split in one batch, so a logged loss is the loss of the
weights before that step on the parent's data; the parent's last step has a near-zero cosine
learning rate, so the weights it leaves differ little from the ones its last loss was measured on.
"""

from __future__ import annotations

import json

import pytest

from runner.pipeline import run_pipeline
from runner.recipe.load import load_recipe
from tests.iterate.training import tiny_recipe

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("iterate-train")]


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iterate")
    root = folder / "runs"
    result = run_pipeline(load_recipe(tiny_recipe(folder)), root=root, say=print)
    if result.error is not None:
        raise result.error
    train = result.stage("train").summary
    # The parent learned: its last loss is far below the base's (its first).
    assert train["first_loss"] - train["last_loss"] > 1.0, train
    return folder, root, result.run_dir, train


def child(parent, version: str, mode: str, until: str | None = None, **changes):
    folder, root, run_dir, _ = parent
    path = tiny_recipe(
        folder,
        version=version,
        continue_from={"run": str(root / "tiny-meton" / "v1"), "mode": mode},
        train__max_steps=2,
        **changes,
    )
    result = run_pipeline(load_recipe(path), root=root, until=until, say=print)
    if result.error is not None:
        raise result.error
    return result


def starts_from_the_parent(parent, result) -> None:
    parent_first, parent_last = parent[3]["first_loss"], parent[3]["last_loss"]
    first = result.stage("train").summary["first_loss"]
    print(f"base {parent_first:.4f}, parent's last {parent_last:.4f}, child's first {first:.4f}")
    assert abs(first - parent_last) < 0.2 * (parent_first - parent_last)


def test_new_adapter_starts_from_the_parent_and_is_evaluated_beside_it(parent):
    result = child(parent, "v2", "new_adapter")
    starts_from_the_parent(parent, result)
    train = result.stage("train").summary
    assert train["start"]["mode"] == "new_adapter"
    assert train["start"]["base_model"] == str((parent[2] / "merged").resolve())
    assert any(n.startswith("continued from tiny-meton v1") for n in result.stage("train").notes)

    root = parent[1]
    assert (root / "tiny-meton" / "v2").resolve() == result.run_dir
    lineage = json.loads((result.run_dir / "lineage.json").read_text())
    assert lineage["version"] == "v2" and lineage["parent"]["version"] == "v1"
    assert lineage["parent"]["run"] == parent[2].name and lineage["parent"]["mode"] == "new_adapter"
    assert set(lineage["data"]) == {"data/train.jsonl", "data/val.jsonl", "data/test.jsonl"}

    report = (result.run_dir / "eval" / "report.md").read_text()
    assert "| metric | base | parent | fine-tuned | vs base | vs parent |" in report
    assert "## On the parent's test split" in report and "## On the test split" in report
    results = json.loads((result.run_dir / "eval" / "results.json").read_text())
    assert results["primary"] == "test_set" and results["sides"] == ["base", "parent", "tuned"]
    loss = results["sets"]["parent_test"]["loss"]
    assert None not in (loss["base"], loss["parent"], loss["tuned"])
    assert loss["parent"] < loss["base"]  # the parent learned what its test split asks


def test_same_adapter_keeps_training_the_parents_adapter(parent):
    result = child(parent, "v2-same", "same_adapter", until="train")
    starts_from_the_parent(parent, result)
    config = (result.run_dir / "train" / "axolotl.yaml").read_text()
    assert f"lora_model_dir: {(parent[2] / 'train').resolve()}" in config


def test_full_trains_every_weight_of_the_merged_parent(parent):
    result = child(
        parent,
        "v2-full",
        "full",
        until="train",
        lora={"enabled": False},
        export=[],
        train__learning_rate=0.0001,
    )
    starts_from_the_parent(parent, result)
    out = result.run_dir / "train"
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()


def test_compare_and_runs_read_both_versions(parent, capsys):
    from runner.cli import main
    from runner.eval.compare import compare_runs

    folder, root, run_dir, _ = parent
    v2 = root / "tiny-meton" / "v2"
    if not (v2 / "eval" / "results.json").is_file():
        pytest.skip("needs the new_adapter test's run")
    report = compare_runs([run_dir, v2.resolve()], folder / "compare")
    assert report["shared"]["test_set"] == 2
    assert [row["run"] for row in report["table"] if row["set"] == "test_set"] == [
        "tiny-meton:v1",
        "tiny-meton:v2",
    ]
    assert (folder / "compare" / "compare-test_set.png").is_file()
    assert main(["runs", "tiny-meton", "--runs-dir", str(root), "--json"]) == 0
    runs = {v: r for r in json.loads(capsys.readouterr().out) for v in r["versions"]}
    assert runs["v1"]["status"] == "done" and runs["v2"]["status"] == "done"
    assert runs["v2"]["parent"] == "tiny-meton v1"
