"""compute.yaml: where a recipe's target is found, and each mistake as the user sees it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from runner.compute.profiles import (
    CARRIED,
    ComputeFile,
    Target,
    find_target,
    load_compute_file,
    profile_files,
)
from runner.errors import UserError
from runner.recipe.problems import RecipeErrors
from tests.helpers import recipe_of

RAY = "targets:\n  cluster:\n    backend: ray\n    address: http://ray-head:8265\n    runs_dir: /shared/runs\n"


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    """Each test sees only the compute.yaml files it writes (its own ~/.config)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(CARRIED, raising=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# compute.yaml content -> every error, as printed (file:line:col: key: message).
BAD_FILES = [
    (
        "targets:\n  a:\n    backend: slurmm\n",
        [
            "compute.yaml:3:5: targets.a.backend: 'slurmm' is not a known compute backend; did "
            "you mean 'slurm'? (known: local, ray, slurm, skypilot)"
        ],
    ),
    (
        "targets:\n  a:\n    backend: slurm\n    runs_dir: /r\n    partiton: gpu\n",
        ["compute.yaml:5:5: targets.a.partiton: unknown key 'partiton'; did you mean 'partition'?"],
    ),
    (
        "targets:\n  a:\n    backend: slurm\n    runs_dir: runs\n    time: 4h\n",
        [
            "compute.yaml:4:5: targets.a.runs_dir: 'runs' must be an absolute path, the same on "
            "every node (e.g. /shared/runs)",
            "compute.yaml:5:5: targets.a.time: '4h' is not a Slurm time limit (e.g. 90, "
            "04:00:00 or 2-00:00:00)",
        ],
    ),
    (
        "targets:\n  a:\n    backend: ray\n    address: ray-head:6379\n    runs_dir: /r\n",
        [
            "compute.yaml:4:5: targets.a.address: 'ray-head:6379' is not the Ray Jobs API address: "
            "give the dashboard's URL, e.g. http://ray-head:8265"
        ],
    ),
    (
        "targets:\n  a:\n    backend: skypilot\n    runs_dir: /r\n    accelerator: H100:8\n",
        [
            "compute.yaml:5:5: targets.a.accelerator: 'H100:8': give the accelerator type only "
            "(e.g. H100); the count per node is the recipe's compute.gpus"
        ],
    ),
    (
        "targets:\n  a:\n    runs_dir: /r\n",
        ["compute.yaml:2:3: targets.a: missing `backend:`; one of: local, ray, slurm, skypilot"],
    ),
    (
        "targets:\n  a:\n    backend: ray\n",
        [
            "compute.yaml:2:3: targets.a: 'address' is required",
            "compute.yaml:2:3: targets.a: 'runs_dir' is required",
        ],
    ),
    ("targets: {}\n", ["compute.yaml:1:1: targets: needs at least one entry"]),
    (
        "cluster:\n  backend: ray\n",
        [
            "compute.yaml:1:1: cluster: unknown key 'cluster'",
            "compute.yaml:1:1: (top level): 'targets' is required",
        ],
    ),
    ("targets:\n  a: [1\n", None),  # YAML syntax: one error with its line
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_compute_files(text, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "compute.yaml", text)
    with pytest.raises(UserError) as err:
        load_compute_file(path)
    lines = str(err.value).splitlines()
    if expected is None:
        assert lines[0] == "1 error in compute.yaml:" and "(yaml)" in lines[1]
        return
    count = len(expected)
    assert lines[0] == f"{count} error{'s' if count > 1 else ''} in compute.yaml:"
    shown = [line.strip() for line in lines[1:] if not line.strip()[:1].isdigit()]
    assert sorted(shown) == sorted(expected)


def test_profile_files_beside_the_recipe_then_the_users(tmp_path):
    assert profile_files(tmp_path / "r" / "x.yaml") == [
        tmp_path / "r" / "compute.yaml",
        tmp_path / "config" / "recipe-runner" / "compute.yaml",
    ]


def test_the_first_file_that_defines_the_name_wins(tmp_path):
    write(tmp_path / "r" / "compute.yaml", "targets:\n  here:\n    backend: local\n")
    write(tmp_path / "config" / "recipe-runner" / "compute.yaml", RAY)
    recipe_path = tmp_path / "r" / "x.yaml"
    assert find_target(recipe_path, "here").backend == "local"
    cluster = find_target(recipe_path, "cluster")
    assert cluster.backend == "ray" and cluster.file.endswith("config/recipe-runner/compute.yaml")


def test_a_missing_target_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "r" / "compute.yaml", RAY)
    with pytest.raises(UserError) as err:
        find_target(tmp_path / "r" / "x.yaml", "clustr")
    assert str(err.value) == (
        "no compute profile named 'clustr'; did you mean 'cluster'?; looked in "
        "r/compute.yaml (defines: cluster); config/recipe-runner/compute.yaml (not found)"
    )


def test_validate_reports_a_missing_target_at_the_recipes_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "compute.yaml", RAY)
    with pytest.raises(RecipeErrors) as err:
        recipe_of({"compute": {"target": "gpu"}}, tmp_path)
    assert "compute.target: no compute profile named 'gpu'; looked in compute.yaml" in str(
        err.value
    )


def test_validate_reports_the_profile_files_own_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "compute.yaml",
        "targets:\n  gpu:\n    backend: slurm\n    runs_dir: /r\n    gpus: 8\n",
    )
    with pytest.raises(RecipeErrors) as err:
        recipe_of({"compute": {"target": "gpu"}}, tmp_path)
    text = str(err.value)
    assert "compute.target: 1 error in compute.yaml:" in text
    assert "compute.yaml:5:5: targets.gpu.gpus: unknown key 'gpus'" in text


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        (
            {"nodes": 2, "strategy": "ddp"},
            "compute.nodes: compute.nodes is 2: training on several machines needs compute.target",
        ),
        (
            {"nodes": 2, "target": "cluster"},
            "compute.strategy: compute.nodes is 2: choose compute.strategy ddp, fsdp or deepspeed",
        ),
    ],
)
def test_several_nodes_need_a_target_and_a_strategy(compute, message, tmp_path):
    write(tmp_path / "compute.yaml", RAY)
    with pytest.raises(RecipeErrors) as err:
        recipe_of({"compute": compute}, tmp_path)
    assert message in str(err.value)


def test_relative_working_folders_are_relative_to_compute_yaml(tmp_path):
    path = write(
        tmp_path / "project" / "compute.yaml",
        """\
        targets:
          ray:
            backend: ray
            address: http://h:8265/
            runs_dir: /r
            runtime_env: {working_dir: .., pip: [recipe-runner]}
          sky:
            backend: skypilot
            runs_dir: /r
            workdir: .
          s3:
            backend: ray
            address: https://h
            runs_dir: /r
            runtime_env: {working_dir: "s3://bucket/code.zip"}
        """,
    )
    targets = load_compute_file(path).targets
    assert targets["ray"].runtime_env == {"working_dir": str(tmp_path), "pip": ["recipe-runner"]}
    assert targets["ray"].address == "http://h:8265"
    assert targets["sky"].workdir == str(tmp_path / "project")
    assert targets["s3"].runtime_env["working_dir"] == "s3://bucket/code.zip"


def test_a_job_carries_its_target(tmp_path, monkeypatch):
    """On the cluster there is no compute.yaml (it was the submitter's ~/.config): the job's
    $RECIPE_TARGET holds what the nodes need, and nothing about how to submit."""
    profile = ComputeFile.model_validate(
        {
            "targets": {
                "hpc": {
                    "backend": "slurm",
                    "runs_dir": "/shared/runs",
                    "partition": "gpu",
                    "setup": "module load cuda",
                    "rdzv_port": 29500,
                }
            }
        }
    ).targets["hpc"]
    carried = Target("hpc", "/home/me/.config/recipe-runner/compute.yaml", profile).carried()
    assert json.loads(carried) == {
        "name": "hpc",
        "file": "/home/me/.config/recipe-runner/compute.yaml",
        "profile": {"backend": "slurm", "runs_dir": "/shared/runs", "rdzv_port": 29500},
    }
    monkeypatch.setenv(CARRIED, carried)
    target = find_target(tmp_path / "x.yaml", "hpc")
    assert (target.backend, target.profile.rdzv_port) == ("slurm", 29500)
    with pytest.raises(UserError, match="this process runs on target 'hpc'"):
        find_target(tmp_path / "x.yaml", "other")
    recipe = recipe_of({"compute": {"target": "hpc", "nodes": 2, "strategy": "ddp"}}, tmp_path)
    assert recipe.compute.nodes == 2
