"""Dagster assets and asset checks: thin wrappers around the vec2face library steps."""

from assets_defs.checks import benchmark_sets_expectations, webface_subset_expectations
from assets_defs.toy_world import benchmark_sets, pool_assets
from assets_defs.webface import webface_subset

all_assets = [*pool_assets, benchmark_sets, webface_subset]
all_asset_checks = [webface_subset_expectations, benchmark_sets_expectations]

__all__ = ["all_asset_checks", "all_assets"]
