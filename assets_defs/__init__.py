"""Dagster assets and asset checks: thin wrappers around the vec2face library steps."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets_defs.checks import (
    attribute_estimator_expectations,
    benchmark_accuracies_expectations,
    benchmark_sets_expectations,
    fmae_generator_expectations,
    fr_check,
    fr_model_expectations,
    gaussian_ablation_expectations,
    hsface_manifest_expectations,
    hsface_noise_expectations,
    hsface_shard_check,
    identity_vectors_expectations,
    pool_check,
    webface_subset_expectations,
)
from assets_defs.evaluation import all_evaluation_assets
from assets_defs.generation import (
    gaussian_ablation,
    hsface_merged,
    identity_vectors,
    make_hsface_dataset,
)
from assets_defs.models import model_assets
from assets_defs.steps import MODEL_POOLS, WORLD_POOLS, Step, chain_steps
from assets_defs.toy_world import benchmark_sets, pool_assets
from assets_defs.webface import webface_subset
from assets_defs.zoo import zoo_assets


def with_code_versions(
    assets: list[dg.AssetsDefinition], steps: dict[str, Step], params: dict[str, Any]
) -> list[dg.AssetsDefinition]:
    """``assets`` with each step's code version under ``params`` (the zoo group's own
    assets, which are not steps, as they are)."""

    def versioned(spec: dg.AssetSpec) -> dg.AssetSpec:
        step = steps.get(spec.key.to_user_string())
        return spec if step is None else spec.replace_attributes(
            code_version=step.code_version(params)
        )

    return [asset.map_asset_specs(versioned) for asset in assets]


def build_assets(params: dict[str, Any]) -> list[dg.AssetsDefinition]:
    """Every asset of the chain; ``params`` fixes the HSFace shards (the partitions), where
    each off-the-shelf model comes from (``sources``: the zoo, or a training step and its
    pool) and each step's code version (the values of the params keys it reads and its
    code: a change of either makes the step stale)."""
    steps = chain_steps(params)
    return with_code_versions([
        *pool_assets(steps),
        benchmark_sets,
        webface_subset,
        *model_assets(steps),
        identity_vectors,
        make_hsface_dataset(params),
        hsface_merged,
        gaussian_ablation,
        *all_evaluation_assets,
        *zoo_assets,
    ], steps, params)


#: the checks of the assets every chain has, whatever its params (see build_asset_checks)
all_asset_checks = [
    *(pool_check(pool) for pool in WORLD_POOLS if pool not in MODEL_POOLS),
    benchmark_sets_expectations,
    webface_subset_expectations,
    fr_check("fr_teacher"),
    fr_check("fr_judge"),
    attribute_estimator_expectations,
    fmae_generator_expectations,
    identity_vectors_expectations,
    hsface_manifest_expectations,
    gaussian_ablation_expectations,
    hsface_noise_expectations,
    fr_model_expectations,
    benchmark_accuracies_expectations,
]


def build_asset_checks(params: dict[str, Any]) -> list[dg.AssetChecksDefinition]:
    """Every check of the chain ``params`` describes, one or more per step of
    :func:`~assets_defs.steps.chain_steps` (the zoo group's assets have none):
    :data:`all_asset_checks`, the checks of the model pools the chain renders
    (``sources: train``), and the per-shard HSFace check on the params' shards."""
    steps = chain_steps(params)
    return [
        *all_asset_checks,
        *(pool_check(pool) for pool in MODEL_POOLS if f"{pool}_pool" in steps),
        hsface_shard_check(params),
    ]


__all__ = ["all_asset_checks", "build_asset_checks", "build_assets"]
