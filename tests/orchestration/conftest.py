"""A micro profile: the project's dvc.yaml with seconds-sized params, in a temporary repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]

MICRO_PARAMS = {
    "world": {"seed": 0, "pools": {
        "teacher": {"identities": 2, "images": 2, "workers": 1},
        "judge": {"identities": 2, "images": 2, "workers": 1},
        "webface": {"identities": 4, "images": 3, "workers": 1},
        "pca": {"identities": 2, "images": 2, "workers": 1},
    }},
    "benchmarks": {"pairs": 20, "identities": 20, "lookalike_k": 2, "seed": 0, "workers": 1},
    "subset": {"identities": 3, "min_images": 2, "seed": 0, "write_mask": True},
}


def make_micro_project(repo: Path) -> Path:
    """Copy dvc.yaml into ``repo`` beside micro params; outputs go to ``repo/outputs/tiny``
    (the root dvc.yaml names), so ``dvc status`` speaks about the same folders."""
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "dvc.yaml", repo / "dvc.yaml")
    (repo / "params.yaml").write_text(yaml.safe_dump(MICRO_PARAMS, sort_keys=False))
    return repo


@pytest.fixture(autouse=True)
def _closed_network(monkeypatch):
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
                       "DAGSTER_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def micro_project(tmp_path) -> Path:
    return make_micro_project(tmp_path / "project")
