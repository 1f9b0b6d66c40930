"""The project's one Definitions: assets, checks, jobs, schedules, sensors, resources.

Output root and params file come from ``VEC2FACE_OUT`` / ``VEC2FACE_PARAMS`` (defaults:
the embedded ``tiny`` profile), so ``dagster dev`` and the main job see the same tree.
The params fix the HSFace shards, i.e. the partitions of ``hsface_dataset``. The params'
``executor`` section (or ``VEC2FACE_EXECUTOR``) picks how steps run: in process, in
separate processes (the default), on Celery workers or as Kubernetes jobs
(:mod:`orchestration.executors`; each shard run's step then goes to a worker or a pod).
"""

from __future__ import annotations

import os

import dagster as dg

from assets_defs import build_asset_checks, build_assets
from assets_defs.generation import shard_keys
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from orchestration.executors import executor_settings, make_executor
from orchestration.jobs import all_jobs
from orchestration.schedules import all_schedules
from orchestration.sensors import make_sensors


def make_resources(
    root: str, params: str, repo_dir: str = "."
) -> dict[str, dg.ConfigurableResource]:
    """The resources of a profile rooted at ``root`` (used by the Definitions and the main job)."""
    return {
        "paths": PipelinePaths(root=root, params=params),
        "mlflow": MlflowResource(root=root),
        "dvc": DvcResource(repo_dir=repo_dir, remote_dir=os.path.join(root, "dvc-remote")),
    }


def make_definitions(root: str, params: str, repo_dir: str = ".") -> dg.Definitions:
    """The pipeline's Definitions for one profile (output root + params file)."""
    resources = make_resources(root, params, repo_dir)
    values = resources["paths"].read_params()
    return dg.Definitions(
        assets=build_assets(values),
        asset_checks=build_asset_checks(values),
        jobs=all_jobs,
        schedules=all_schedules,
        sensors=make_sensors(shard_keys(values)),
        resources=resources,
        executor=make_executor(executor_settings(values), resources["paths"].root_dir()),
    )


defs = make_definitions(
    os.environ.get("VEC2FACE_OUT", "outputs/tiny"),
    os.environ.get("VEC2FACE_PARAMS", "params.yaml"),
    os.environ.get("VEC2FACE_REPO", "."),
)
