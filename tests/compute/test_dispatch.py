"""Sending a recipe to its target: what `recipe run` and `recipe plan` do with each backend.

`sbatch` and `sky` cannot exist on this machine (no Slurm, no cloud): where a test needs one, a
small script stands in for it on PATH and records what it was given; everything up to the
call is the real code path. Ray's is real (tests/compute/test_ray.py).
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest

from runner.cli import main as cli
from runner.compute.profiles import CARRIED
from tests.helpers import recipe_of


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A recipe with a compute.yaml beside it, run from its folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(CARRIED, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compute.yaml").write_text(
        textwrap.dedent(
            f"""\
            targets:
              hpc:
                backend: slurm
                partition: gpu
                runs_dir: {tmp_path}/shared/runs
              sky:
                backend: skypilot
                accelerator: L4
                runs_dir: /runs
                workdir: .
              ray:
                backend: ray
                address: http://127.0.0.1:9
                runs_dir: /shared/runs
            """
        )
    )
    recipe_of({}, tmp_path)  # writes data.jsonl
    (tmp_path / "t.yaml").write_text(
        "recipe: 1\nname: t\nsources:\n  - type: instructions\n    path: data.jsonl\n"
        "model:\n  base: tiny:qwen2\n"
    )
    return tmp_path


def stand_in(folder: Path, name: str, body: str) -> Path:
    """A program on PATH that records its arguments (in <name>.args) and runs ``body``."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/{name}.args"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_slurm_submission(project, monkeypatch, capsys):
    bin_dir = project / "bin"
    stand_in(bin_dir, "sbatch", "echo '4242;cluster'")
    stand_in(bin_dir, "sinfo", "echo gpu")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = ["run", "t.yaml", "--set", "compute.target=hpc", "--set", "train.epochs=1", "--json"]
    assert cli(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["backend"], out["job"], out["status"]) == ("slurm", "4242", "submitted")
    (script,) = (project / "shared" / "runs" / "t" / "submissions").glob("*-hpc.sbatch")
    assert (bin_dir / "sbatch.args").read_text() == f"--parsable {script}\n"
    assert (bin_dir / "sinfo.args").read_text() == "--noheader --format=%P --partition gpu\n"
    text = script.read_text()
    assert text == out["submission"]
    assert "#SBATCH --partition=gpu\n" in text
    assert text.rstrip().endswith(
        f"recipe run {project}/t.yaml --runs-dir {project}/shared/runs "
        "--set compute.target=hpc --set train.epochs=1"
    )


def test_slurm_partition_unknown_to_sinfo(project, monkeypatch, capsys):
    bin_dir = project / "bin"
    stand_in(bin_dir, "sbatch", "echo 1")
    stand_in(bin_dir, "sinfo", "true")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert cli(["run", "t.yaml", "--set", "compute.target=hpc"]) == 2
    err = capsys.readouterr().err
    assert (
        "the target 'hpc' (slurm, compute.yaml) is not reachable: tried `sinfo --partition gpu`"
        in err
    )
    assert not (bin_dir / "sbatch.args").exists()


def test_skypilot_launch(project, monkeypatch, capsys):
    bin_dir = project / "bin"
    stand_in(
        bin_dir,
        "sky",
        'case "$1" in --version) echo "skypilot, version 0.10.3";; *) echo launched;; esac',
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert cli(["run", "t.yaml", "--set", "compute.target=sky"]) == 0
    assert "launched" in capsys.readouterr().out
    (task,) = (project / "runs" / "t" / "submissions").glob("*-sky.sky.yaml")
    calls = (bin_dir / "sky.args").read_text().splitlines()
    assert calls == ["--version", f"jobs launch --name recipe-t --yes {task}"]
    assert "accelerators: L4:1" in task.read_text()
    assert "recipe run t.yaml --runs-dir /runs --set compute.target=sky" in task.read_text()


@pytest.mark.parametrize(
    ("target", "tried"),
    [
        ("hpc", "tried `sbatch` on PATH: not found"),
        ("sky", "tried `sky` on PATH: not found"),
        ("ray", "tried GET http://127.0.0.1:9/api/version: no answer"),
    ],
)
def test_an_unreachable_target_stops_the_run_before_any_work(
    target, tried, project, monkeypatch, capsys
):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cli(["run", "t.yaml", "--set", f"compute.target={target}"]) == 2
    err = capsys.readouterr().err
    assert f"error: compute.target: the target '{target}' (" in err and tried in err
    assert not (project / "runs").exists()


def test_dry_run_prints_the_submission(project, capsys):
    assert cli(["run", "t.yaml", "--set", "compute.target=ray", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[dry-run] would submit to the target 'ray' (ray, compute.yaml):" in out
    assert f"entrypoint: recipe run {project}/t.yaml --runs-dir /shared/runs" in out


def test_plan_shows_the_submission(project, capsys):
    args = ["plan", "t.yaml", "--set", "compute.target=hpc", "--set", "compute.nodes=2"]
    assert cli([*args, "--set", "compute.strategy=ddp"]) == 0
    out = capsys.readouterr().out
    assert "# compute: target hpc (slurm, " in out
    assert "# compute: the sbatch script\n#!/bin/bash\n" in out
    assert "srun --kill-on-bad-exit=1 recipe run" in out
    assert "--launcher torchrun -- --nnodes 2 --nproc_per_node 1" in out


def test_doctor_checks_the_target(project, capsys):
    assert cli(["doctor", "--target", "ray", "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    check = checks["target ray"]
    assert check["status"] == "missing"
    assert "tried GET http://127.0.0.1:9/api/version" in check["detail"]


def test_plan_of_a_local_target_across_machines(project, capsys):
    (project / "compute.yaml").write_text("targets:\n  lab:\n    backend: local\n")
    args = ["plan", "t.yaml", "--set", "compute.target=lab", "--set", "compute.nodes=2"]
    assert cli([*args, "--set", "compute.strategy=ddp", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["compute"]["by_hand"].endswith(
        f"recipe run {project}/t.yaml --set compute.target=lab --set compute.nodes=2 "
        "--set compute.strategy=ddp --node-rank K"
    )
    train = next(s for s in plan["stages"] if s["name"] == "train")
    assert train["details"]["launch"][-2:] == ["--rdzv_endpoint", "<node 0>:29400"]


def test_across_nodes_on_cpu_is_refused_before_any_stage(project, monkeypatch, capsys):
    from runner.train.hardware import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA")
    (project / "compute.yaml").write_text("targets:\n  lab:\n    backend: local\n")
    monkeypatch.setenv("RECIPE_JOB_ID", "lab-1")
    monkeypatch.setenv("RECIPE_HEAD_ADDR", "127.0.0.1")
    args = ["run", "t.yaml", "--set", "compute.target=lab", "--set", "compute.nodes=2"]
    assert cli([*args, "--set", "compute.strategy=ddp", "--node-rank", "0"]) == 2
    assert "compute.nodes is 2, and this node has no CUDA GPU" in capsys.readouterr().err
    assert not list(project.glob("runs/t/stages/data-*"))
    # Node 1, waiting for a training that will not come, is released.
    record = json.loads((project / "runs" / "t" / ".nodes" / "lab-1.json").read_text())
    assert record == {"state": "ended"}


def _job(project: Path, **fields) -> Path:
    """A job API job's folder with its ``job.json``, as ``recipe serve`` writes it."""
    folder = project / "jobs" / "job-1"
    folder.mkdir(parents=True)
    spec = {
        "type": "run",
        "command": "run",
        "until": "train",
        "overrides": ["compute.target=hpc"],
        "runs_dir": str(project / "api-runs"),
        "data_roots": [str(project)],
        "allow_commands": False,
        "recipe_file": str(project / "t.yaml"),
        **fields,
    }
    (folder / "job.json").write_text(json.dumps(spec))
    return folder


def test_a_job_api_job_goes_to_the_target(project, monkeypatch, capsys):
    from runner.serve.worker import run_job

    bin_dir = project / "bin"
    stand_in(bin_dir, "sbatch", "echo '4343;cluster'")
    stand_in(bin_dir, "sinfo", "echo gpu")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = _job(project)
    assert run_job(folder) == 0
    result = json.loads((folder / "result.json").read_text())
    assert (result["backend"], result["job"], result["status"]) == ("slurm", "4343", "submitted")
    assert result["error"] is None
    (script,) = (project / "shared" / "runs" / "t" / "submissions").glob("*-hpc.sbatch")
    assert "--set compute.target=hpc --until train\n" in script.read_text()
    assert "submitted Slurm job 4343" in capsys.readouterr().out  # the job's log
    assert not (project / "api-runs").exists()  # nothing ran on the server's machine


def test_a_job_api_job_sent_as_text_cannot_go_to_a_cluster(project, capsys):
    from runner.serve.worker import run_job

    text = (project / "t.yaml").read_text() + "compute:\n  target: hpc\n"
    folder = _job(project, overrides=[], recipe_text=text, recipe_file=str(project / "r.yaml"))
    assert run_job(folder) == 2
    result = json.loads((folder / "result.json").read_text())
    assert "a recipe sent as text cannot run on a cluster" in result["error"]
