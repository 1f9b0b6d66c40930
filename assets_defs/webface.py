"""``webface_subset``: the WebFace-style training subset the generator learns from."""

from typing import Any

import dagster as dg

from assets_defs._produce import produce, step_asset
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import STEPS
from vec2face.config import load_step_config
from vec2face.data.subset import SubsetConfig, make_subset

SOURCE = STEPS["webface_pool"]


def _subset_counts(summary: dict[str, Any]) -> dict[str, float]:
    return {
        k: summary[k]
        for k in (
            "selected",
            "images_written",
            "skipped",
            "source_identities",
            "eligible_identities",
        )
    }


@step_asset("webface_subset", "webface", {"python", "lmdb"})
def webface_subset(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """N identities with at least K readable images of the WebFace source, as an FR-layout LMDB
    with a manifest and a report (the paper's 50K-identity WebFace4M subset)."""
    step = STEPS["webface_subset"]
    config = load_step_config(SubsetConfig, "subset", paths.read_params())
    src, out = paths.output(SOURCE.output), paths.output(step.output)
    return produce(
        context, step, config, lambda _tracker: make_subset(src, out, config), paths=paths,
        dvc=dvc, mlflow=mlflow, counts=_subset_counts, artifacts=("subset_report.json",),
    )
