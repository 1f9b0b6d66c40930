"""The embedded default's source data: the toy world's pools and the benchmark sets.

One asset per pool rather than one multi-asset: each pool feeds a different step
(teacher -> fr_teacher, judge -> fr_judge, webface -> webface_subset, pca ->
identity_vectors), so separate assets give each consumer its own lineage and
staleness, and resizing one pool re-renders only that pool. They match dvc.yaml's
``<pool>_pool`` stages one to one.
"""

from typing import Any

import dagster as dg

from assets_defs._produce import produce, step_asset
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import MODEL_POOLS, STEPS, WORLD_POOLS, Step
from vec2face.config import load_step_config
from vec2face.errors import ConfigError
from vec2face.toyfaces.benchmarks import BenchmarksConfig, make_benchmarks
from vec2face.toyfaces.pools import POOLS
from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces

GROUP = "toy_world"


def pool_config(params: dict[str, Any], pool: str) -> ToyfacesConfig:
    """A pool's config from ``params.yaml``: ``world.<group>.<pool>`` plus ``world.seed``
    (group ``model_pools`` for the pools that only train off-the-shelf models, else
    ``pools``)."""
    world = params.get("world") or {}
    group = "model_pools" if pool in MODEL_POOLS else "pools"
    sizes = (world.get(group) or {}).get(pool)
    if not isinstance(sizes, dict):
        raise ConfigError(
            f"params.yaml has no world.{group}.{pool} (identities, images) for the '{pool}' pool"
        )
    return load_step_config(
        ToyfacesConfig,
        f"world.{group}.{pool}",
        None,
        dict(sizes, pool=pool, seed=world.get("seed", 0)),
    )


def _pool_counts(summary: dict[str, Any]) -> dict[str, float]:
    return {k: summary[k] for k in ("identities", "images", "images_per_identity")}


def _pool_asset(step: Step, pool: str) -> dg.AssetsDefinition:
    @step_asset(
        step.asset,
        GROUP,
        {"python"},
        description=f"Toy world pool '{pool}': {POOLS[pool]}. Image folders, manifest, preview.",
    )
    def _pool(
        context: dg.AssetExecutionContext,
        paths: PipelinePaths,
        dvc: DvcResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        config = pool_config(paths.read_params(), pool)
        out = paths.output(step.output)
        return produce(
            context, step, config, lambda _tracker: make_toyfaces(config, out, progress=False),
            paths=paths, dvc=dvc, mlflow=mlflow, counts=_pool_counts,
            artifacts=("world.json", "preview.png"), preview="preview.png",
        )

    return _pool


def pool_assets(steps: dict[str, Step]) -> list[dg.AssetsDefinition]:
    """The pool assets of a chain (``steps``: :func:`assets_defs.steps.chain_steps`)."""
    return [_pool_asset(steps[f"{p}_pool"], p) for p in WORLD_POOLS if f"{p}_pool" in steps]


def _benchmark_counts(summary: dict[str, Any]) -> dict[str, float]:
    counts: dict[str, float] = {"sets": len(summary)}
    for name, info in summary.items():
        counts[f"{name}_pairs"] = info["pairs"]
        counts[f"{name}_genuine"] = info["genuine"]
    return counts


@step_asset("benchmark_sets", GROUP, {"python"})
def benchmark_sets(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The five toy verification sets (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW stand-ins) as .bin
    files."""
    step = STEPS["benchmark_sets"]
    config = load_step_config(BenchmarksConfig, "benchmarks", paths.read_params())
    out = paths.output(step.output)
    return produce(
        context, step, config, lambda _tracker: make_benchmarks(config, out, progress=False),
        paths=paths, dvc=dvc, mlflow=mlflow, counts=_benchmark_counts,
        artifacts=("benchmarks.json",),
    )
