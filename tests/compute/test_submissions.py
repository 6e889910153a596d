"""Golden files: every backend's submission for one node and for several, with the training
launch and Axolotl settings each leads to.

An intended change is reviewed as a diff of these files; refresh them with `make golden`.
The Axolotl settings are also checked key by key against Axolotl's own config model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runner.compute.dispatch import render
from runner.compute.profiles import CARRIED, ComputeFile, Target
from runner.recipe.load import load_recipe
from runner.train.plan import train_plan
from tests.train.test_golden import GOLDEN, STRATEGY_KEYS, compare

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {
    "ray": {
        "backend": "ray",
        "address": "http://ray-head:8265",
        "runs_dir": "/shared/runs",
        "runtime_env": {"pip": ["recipe-runner"], "env_vars": {"HF_HOME": "/shared/hf"}},
        "entrypoint_num_gpus": 1,
    },
    "slurm": {
        "backend": "slurm",
        "partition": "gpu",
        "account": "ml-team",
        "time": "04:00:00",
        "runs_dir": "/shared/runs",
        "workdir": "/shared/projects/code-assistant",
        "setup": "module load cuda/12.4\nsource /shared/venvs/recipe-runner/bin/activate\n",
        "sbatch_options": {"mem": "0"},
    },
    "skypilot": {
        "backend": "skypilot",
        "accelerator": "H100",
        "cloud": "aws",
        "runs_dir": "/runs",
        "workdir": ".",
        "file_mounts": {"/runs": {"name": "team-recipe-runs", "mode": "MOUNT"}},
        "setup": "pip install recipe-runner\n",
    },
}
# nodes x GPUs per node, and the strategy spreading them.
SHAPES = {
    "1x1": {"compute.nodes": 1, "compute.gpus": 1, "compute.strategy": "single"},
    "2x4": {"compute.nodes": 2, "compute.gpus": 4, "compute.strategy": "ddp"},
}
CASES = [(backend, shape) for backend in PROFILES for shape in SHAPES]


def target_of(backend: str) -> Target:
    profile = ComputeFile.model_validate({"targets": {"cluster": PROFILES[backend]}})
    return Target("cluster", "compute.yaml", profile.targets["cluster"])


@pytest.mark.parametrize(("backend", "shape"), CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_submission_golden(backend, shape, tmp_path, monkeypatch):
    from runner.train.check import check_axolotl_keys

    target = target_of(backend)
    # The train plan finds the profile as users keep it: in ~/.config/recipe-runner/.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv(CARRIED, raising=False)
    user_file = tmp_path / "recipe-runner" / "compute.yaml"
    user_file.parent.mkdir()
    user_file.write_text(yaml.safe_dump({"targets": {"cluster": PROFILES[backend]}}))
    overrides = ["compute.target=cluster", *(f"{k}={v}" for k, v in SHAPES[shape].items())]
    recipe = load_recipe(ROOT / "recipes" / "quickstart.yaml", overrides)
    sub = render(recipe, target, ["train.max_steps=100"], recipe_arg="recipes/quickstart.yaml")
    train = train_plan(recipe)
    cfg = train["axolotl"]
    keys = (*STRATEGY_KEYS, "use_ray", "ray_num_workers", "resources_per_worker")
    pinned = {
        "command": sub.command,
        "launch": train["launch"],
        "axolotl": {k: cfg[k] for k in keys if k in cfg},
        "submission": sub.text,
    }
    text = yaml.dump(pinned, Dumper=_Literal, sort_keys=False, width=4096)
    compare(GOLDEN / "compute" / f"{backend}-{shape}.yaml", text)
    assert check_axolotl_keys(cfg) == []


class _Literal(yaml.SafeDumper):
    pass


_Literal.add_representer(
    str,
    lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None),
)


def test_every_backend_is_pinned():
    import typing

    from runner.compute.profiles import AnyProfile

    union = typing.get_args(AnyProfile)[0]
    remote = {m.model_fields["backend"].annotation.__args__[0] for m in typing.get_args(union)}
    assert remote - {"local"} == set(PROFILES)
