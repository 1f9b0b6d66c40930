"""Dagster assets and asset checks: thin wrappers around the vec2face library steps."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets_defs.checks import (
    benchmark_accuracies_expectations,
    benchmark_sets_expectations,
    hsface_manifest_expectations,
    hsface_noise_expectations,
    identity_vectors_expectations,
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
from assets_defs.steps import chain_steps
from assets_defs.toy_world import benchmark_sets, pool_assets
from assets_defs.webface import webface_subset
from assets_defs.zoo import zoo_assets


def build_assets(params: dict[str, Any]) -> list[dg.AssetsDefinition]:
    """Every asset of the chain; ``params`` fixes the HSFace shards (the partitions) and where
    each off-the-shelf model comes from (``sources``: the zoo, or a training step and its
    pool)."""
    steps = chain_steps(params)
    return [
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
    ]


all_asset_checks = [
    webface_subset_expectations,
    benchmark_sets_expectations,
    identity_vectors_expectations,
    hsface_manifest_expectations,
    hsface_noise_expectations,
    benchmark_accuracies_expectations,
]

__all__ = ["all_asset_checks", "build_assets"]
