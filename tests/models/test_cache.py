"""The build-once cache: the user's cache folder, one build under concurrency, nothing half-made."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from runner.models.cache import DONE_MARKER, build_once, cache_root


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RECIPE_RUNNER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "recipe-runner"
    monkeypatch.setenv("RECIPE_RUNNER_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("RECIPE_RUNNER_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "recipe-runner"


def _slow_build(counter: str):
    def build(tmp: Path) -> None:
        with open(counter, "a") as fh:
            fh.write("built\n")
        time.sleep(0.5)
        (tmp / "payload.txt").write_text("ok")

    return build


def _worker(cache: str, counter: str) -> str:
    import os

    os.environ["RECIPE_RUNNER_CACHE"] = cache
    return str(build_once("things", "thing", "k" * 64, _slow_build(counter)))


def test_two_processes_build_once(tmp_path):
    counter = tmp_path / "count.txt"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(_worker, [(str(tmp_path / "c"), str(counter))] * 2)
    assert paths[0] == paths[1]
    assert counter.read_text().count("built") == 1
    assert (Path(paths[0]) / "payload.txt").read_text() == "ok"
    assert (Path(paths[0]) / DONE_MARKER).is_file()


def test_a_failed_build_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("RECIPE_RUNNER_CACHE", str(tmp_path))

    def broken(tmp: Path) -> None:
        (tmp / "partial").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_once("things", "thing", "a" * 64, broken)
    assert [p.name for p in (tmp_path / "things").iterdir() if not p.name.endswith(".lock")] == []
    # The next call builds it properly.
    path = build_once("things", "thing", "a" * 64, lambda tmp: (tmp / "x").write_text("1"))
    assert (path / "x").read_text() == "1"


def test_a_new_key_is_a_new_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RECIPE_RUNNER_CACHE", str(tmp_path))
    one = build_once("things", "thing", "1" * 64, lambda tmp: None)
    two = build_once("things", "thing", "2" * 64, lambda tmp: None)
    assert one != two and one.is_dir() and two.is_dir()
