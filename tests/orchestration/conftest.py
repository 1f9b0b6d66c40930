"""A micro profile: the project's dvc.yaml with seconds-sized params, in a temporary repo."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

#: where the project ships its zoo (package data), relative to the project
ZOO_WEIGHTS = Path("vec2face/zoo/weights")

#: the micro profile: every section of params.yaml at seconds-sized values
MICRO_PARAMS = Path(__file__).with_name("micro_params.yaml")


@functools.cache
def micro_zoo() -> Path:
    """Every zoo entry built on the micro profile, once per test process: the micro chain's
    zoo (it does not depend on the shipped weights, only on the code that makes them)."""
    from vec2face.config import read_params
    from vec2face.zoo import ZOO_NAMES
    from vec2face.zoo.build import build

    root = Path(tempfile.mkdtemp(prefix="vec2face-micro-zoo-"))
    params = read_params(MICRO_PARAMS)
    for name in ZOO_NAMES:
        build(name, params, root / "work", root / "zoo", command=f"micro zoo: {name}",
              progress=False)
    return root / "zoo"


def make_micro_project(repo: Path, zoo: bool = True) -> Path:
    """Copy dvc.yaml into ``repo`` beside the micro params; outputs go to ``repo/outputs/tiny``
    (the root dvc.yaml names), so ``dvc status`` speaks about the same folders. The library's
    code is copied too (the stages depend on it), and the micro zoo lies where the project
    ships its zoo (dvc.yaml's zoo stages depend on those files); point ``VEC2FACE_ZOO`` at
    ``repo / ZOO_WEIGHTS`` to load from it (``zoo=False``: no zoo, for tests whose chain
    trains every model and never runs a zoo stage)."""
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copyfile(PROJECT / ".dvcignore", repo / ".dvcignore")
    shutil.copytree(
        PROJECT / "vec2face",
        repo / "vec2face",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ZOO_WEIGHTS.name),
        dirs_exist_ok=True,
    )
    shutil.copyfile(MICRO_PARAMS, repo / "params.yaml")
    if zoo:
        shutil.copytree(micro_zoo(), repo / ZOO_WEIGHTS, dirs_exist_ok=True)
    return repo


def step_failure_message(result) -> str:
    """The message of a run's one failed step, with every exception it wraps."""
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error, message = failure.step_failure_data.error, ""
    while error is not None:  # Dagster wraps the step's exception; read the whole chain
        message, error = message + error.message, error.cause
    return message


@pytest.fixture(autouse=True)
def _closed_network(monkeypatch):
    for key, value in {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def micro_project(tmp_path) -> Path:
    return make_micro_project(tmp_path / "project")
