"""`compute.yaml`: named compute profiles, and how a recipe's `compute.target` finds its own.

A recipe says where it runs with one line, ``compute.target: gpu-cluster``; the profile of that
name says how to get there (which engine, its address or partition, the shared folder runs go
to). Profiles live outside the recipe, so the recipe stays portable: ``compute.yaml`` beside the
recipe file, else ``~/.config/recipe-runner/compute.yaml``::

    targets:
      laptop:
        backend: local
      cluster:
        backend: ray
        address: http://ray-head:8265
        runs_dir: /shared/runs

A job started on a target carries its resolved profile in ``$RECIPE_TARGET`` (JSON), so the
nodes find it even when the profile came from the submitting user's home folder, and a
``recipe run`` that finds it knows it is already on the target and must not submit again.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationError

from runner.errors import UserError
from runner.paths import display_path
from runner.recipe.fields import Section
from runner.recipe.problems import Located, Problem, translate
from runner.recipe.yamlfile import YamlDocument, YamlProblem, dotted, read_yaml
from runner.registry import did_you_mean

PROFILE_FILE = "compute.yaml"
# Set by every submission for the processes it starts: {"name", "file", "profile"}.
CARRIED = "RECIPE_TARGET"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# torchrun's default port for the c10d rendezvous on the first node.
RDZV_PORT = 29400
# What a node reads of its profile (the rest says how to submit, on the submitting machine).
NODE_KEYS = ("backend", "runs_dir", "address", "resources_per_worker", "rdzv_port")


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(
            f"{value!r} must be an absolute path, the same on every node (e.g. /shared/runs)"
        )
    return value


def _http(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(
            f"{value!r} is not the Ray Jobs API address: give the dashboard's URL, "
            "e.g. http://ray-head:8265"
        )
    return value.rstrip("/")


# Slurm's --time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_SLURM_TIME = re.compile(r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+(:\d{2}){0,2})$")


def _slurm_time(value: str) -> str:
    if not _SLURM_TIME.match(value):
        raise ValueError(f"{value!r} is not a Slurm time limit (e.g. 90, 04:00:00 or 2-00:00:00)")
    return value


def _accelerator_type(value: str) -> str:
    if ":" in value:
        raise ValueError(
            f"{value!r}: give the accelerator type only (e.g. H100); "
            "the count per node is the recipe's compute.gpus"
        )
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Profile(Section):
    """Options every compute profile has."""

    kind: ClassVar[str] = "compute backend"
    runs_dir: AbsolutePath | None = None
    """Where run folders go: a folder every node sees at this same path."""

    @property
    def remote(self) -> bool:
        """Whether ``recipe run`` hands the run to an engine instead of running it here."""
        return self.backend != "local"  # type: ignore[attr-defined]

    @property
    def cuda(self) -> bool | None:
        """Whether the target's nodes have CUDA GPUs, for ``recipe plan`` (None: this machine,
        which the plan checks itself)."""
        return None

    def resolve_paths(self, folder: Path) -> Profile:
        """The profile with local paths made absolute against ``folder`` (its file's)."""
        return self


class LocalProfile(Profile):
    """This machine; with compute.nodes above 1, each machine runs `recipe run --node-rank K`
    (and RECIPE_JOB_ID, RECIPE_HEAD_ADDR) by hand."""

    backend: Literal["local"]
    rdzv_port: Port = RDZV_PORT
    """Port of torchrun's c10d rendezvous on the first node (several nodes)."""


class RayProfile(Profile):
    """A Ray cluster: the run is submitted as a Ray job through the Jobs API."""

    backend: Literal["ray"]
    address: Annotated[str, AfterValidator(_http)]
    """The cluster's Jobs API (its dashboard), e.g. http://ray-head:8265."""
    runs_dir: AbsolutePath
    runtime_env: dict[str, Any] = {}
    """Ray's runtime_env for the job (working_dir, pip, env_vars...); a relative working_dir is
    relative to compute.yaml."""
    resources_per_worker: dict[str, float] = {"GPU": 1}
    """Ray resources of each training worker (Axolotl's Ray Train integration)."""
    entrypoint_num_cpus: float | None = Field(None, ge=0)
    """CPUs reserved for the job's driver, which runs data, one-worker training and exports."""
    entrypoint_num_gpus: float | None = Field(None, ge=0)
    """GPUs reserved for the driver: set 1 so one-worker training lands on a GPU node."""

    @property
    def cuda(self) -> bool | None:
        return bool(self.entrypoint_num_gpus) or "GPU" in self.resources_per_worker

    def resolve_paths(self, folder: Path) -> Profile:
        working_dir = self.runtime_env.get("working_dir")
        if isinstance(working_dir, str) and "://" not in working_dir:
            env = {**self.runtime_env, "working_dir": str((folder / working_dir).resolve())}
            return self.model_copy(update={"runtime_env": env})
        return self


class SlurmProfile(Profile):
    """A Slurm cluster: an sbatch script runs `recipe run` on every node (srun)."""

    backend: Literal["slurm"]
    runs_dir: AbsolutePath
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: Annotated[str, AfterValidator(_slurm_time)] | None = None
    """Time limit (e.g. 04:00:00, 2-00:00:00)."""
    sbatch_options: dict[str, str | None] = {}
    """Further #SBATCH options by long name (e.g. {mem: '0', exclusive: ''}); they win over
    the rendered ones, and null drops one (gpus-per-node where a cluster counts gres)."""
    setup: str = ""
    """Shell lines run on each node before recipe-runner (modules, a virtualenv...)."""
    workdir: AbsolutePath | None = None
    """The job's working folder (sbatch --chdir); default: where sbatch is called."""
    rdzv_port: Port = RDZV_PORT
    """Port of torchrun's c10d rendezvous on the first node."""

    @property
    def cuda(self) -> bool | None:
        return True  # the script asks for compute.gpus GPUs per node


class SkyPilotProfile(Profile):
    """Clouds, Kubernetes or Slurm through SkyPilot: a task launched with `sky jobs launch`."""

    backend: Literal["skypilot"]
    runs_dir: AbsolutePath
    accelerator: Annotated[str, AfterValidator(_accelerator_type)] | None = None
    """GPU type per node (e.g. H100); the count is compute.gpus. Unset: CPU nodes."""
    cloud: str | None = None
    region: str | None = None
    use_spot: bool = False
    workdir: str | None = None
    """A local folder synced to every node, where the nodes run (relative to compute.yaml)."""
    file_mounts: dict[str, Any] = {}
    """SkyPilot file_mounts, e.g. a bucket mounted at runs_dir."""
    envs: dict[str, str] = {}
    setup: str = ""
    """Shell lines SkyPilot runs once per node (install recipe-runner here)."""
    rdzv_port: Port = RDZV_PORT
    """Port of torchrun's c10d rendezvous on the first node."""

    @property
    def cuda(self) -> bool | None:
        return self.accelerator is not None

    def resolve_paths(self, folder: Path) -> Profile:
        if self.workdir is not None and not self.workdir.startswith("/"):
            return self.model_copy(update={"workdir": str((folder / self.workdir).resolve())})
        return self


AnyProfile = Annotated[
    LocalProfile | RayProfile | SlurmProfile | SkyPilotProfile, Field(discriminator="backend")
]
TargetName = Annotated[str, Field(pattern=NAME_PATTERN)]


class ComputeFile(Section):
    """A compute.yaml: profiles by the name recipes give as compute.target."""

    targets: dict[TargetName, AnyProfile] = Field(min_length=1)


@dataclass(frozen=True)
class Reach:
    """Whether a target answers from here: what was tried, what it said, and the fix."""

    ok: bool
    tried: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Target:
    """A recipe's resolved target: its name, the file that defines it, and its profile."""

    name: str
    file: str  # a compute.yaml, or $RECIPE_TARGET when a job carried it
    profile: Any  # one of the profile classes

    @property
    def backend(self) -> str:
        return self.profile.backend

    def describe(self) -> str:
        return f"target '{self.name}' ({self.backend}, {display_path(self.file)})"

    def unreachable(self, reach: Reach) -> UserError:
        """The error a run gets when its target does not answer."""
        fix = f"; {reach.fix}" if reach.fix else ""
        return UserError(
            f"compute.target: the {self.describe()} is not reachable: tried {reach.tried}: "
            f"{reach.detail}{fix}"
        )

    def carried(self) -> str:
        """The JSON a submission puts in $RECIPE_TARGET for the processes it starts: the keys
        the nodes read (how to submit is no business of theirs)."""
        keys = set(NODE_KEYS) & set(type(self.profile).model_fields)
        profile = self.profile.model_dump(mode="json", exclude_defaults=True, include=keys)
        data = {"name": self.name, "file": self.file, "profile": profile}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


class ProfileErrors(UserError):
    """Every mistake in a compute.yaml, each with its line."""

    def __init__(self, path: Path, problems: list[Located]):
        count = len(problems)
        problems = sorted(problems, key=lambda p: (p.line, p.column))
        lines = [f"{count} error{'s' if count != 1 else ''} in {display_path(path)}:"]
        lines += ["  " + line for p in problems for line in p.render().splitlines()]
        super().__init__("\n".join(lines))


def _locate(path: Path, document: YamlDocument, problem: Problem) -> Located:
    for cut in range(len(problem.path), -1, -1):
        mark = document.marks.get(problem.path[:cut])
        if mark is not None:
            break
    line, column = (mark.line, mark.column) if mark else (1, 1)
    source = document.lines[line - 1] if 0 < line <= len(document.lines) else None
    return Located(display_path(path), line, column, dotted(problem.path), problem.message, source)


def load_compute_file(path: Path) -> ComputeFile:
    """Read and validate one compute.yaml; every mistake at once, with file and line."""
    try:
        document = read_yaml(path)
    except YamlProblem as exc:
        where = Located(display_path(path), exc.mark.line, exc.mark.column, "(yaml)", exc.message)
        raise ProfileErrors(path, [where]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{display_path(path)}: cannot read: {exc}") from None
    data = document.data if document.data is not None else {}
    try:
        parsed = ComputeFile.model_validate(data)
    except ValidationError as exc:
        problems = translate(ComputeFile, exc.errors(include_url=False), data)
        raise ProfileErrors(path, [_locate(path, document, p) for p in problems]) from None
    folder = path.absolute().parent
    targets = {name: p.resolve_paths(folder) for name, p in parsed.targets.items()}
    return parsed.model_copy(update={"targets": targets})


def user_profile_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "recipe-runner" / PROFILE_FILE


def profile_files(recipe_path: Path) -> list[Path]:
    """Where a recipe's profiles are looked for, in order: beside it, then the user's own."""
    files = [Path(recipe_path).absolute().parent / PROFILE_FILE, user_profile_file()]
    return list(dict.fromkeys(files))


def carried_target() -> dict[str, Any] | None:
    """The target a job carries ($RECIPE_TARGET), or None when this process was not started
    by a submission."""
    text = os.environ.get(CARRIED)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise UserError(f"${CARRIED} is not the JSON a submission writes: {text[:80]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profile"), dict):
        raise UserError(f"${CARRIED} is not the JSON a submission writes: {text[:80]!r}")
    return data


def find_target(recipe_path: Path, name: str) -> Target:
    """The profile ``name``: the one a job carries, else the first compute.yaml defining it.

    A missing name is an error that says every file looked in and what each defines.
    """
    carried = carried_target()
    if carried is not None:
        if carried.get("name") != name:
            raise UserError(
                f"this process runs on target '{carried.get('name')}' (${CARRIED}), "
                f"but the recipe's compute.target is '{name}'"
            )
        try:
            profile = ComputeFile.model_validate({"targets": {name: carried["profile"]}})
        except ValidationError as exc:
            raise UserError(f"${CARRIED} holds an invalid profile: {exc}") from None
        return Target(name, str(carried.get("file") or f"${CARRIED}"), profile.targets[name])
    tried: list[str] = []
    known: list[str] = []
    for path in profile_files(recipe_path):
        if not path.is_file():
            tried.append(f"{display_path(path)} (not found)")
            continue
        targets = load_compute_file(path).targets
        if name in targets:
            return Target(name, str(path), targets[name])
        tried.append(f"{display_path(path)} (defines: {', '.join(targets)})")
        known.extend(targets)
    raise UserError(
        f"no compute profile named '{name}'{did_you_mean(name, known)}; looked in "
        + "; ".join(tried)
    )


def recipe_target(recipe: Any) -> Target | None:
    """The recipe's target (None when ``compute.target`` is unset: this machine)."""
    name = recipe.compute.target
    return None if name is None else find_target(recipe.path, name)
