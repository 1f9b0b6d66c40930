"""Jobs: verbs over asset selections (asset checks of the selected assets run with them)."""

from __future__ import annotations

import dagster as dg

from assets_defs.steps import STEPS

#: the whole current chain, from the toy world to the last step defined
materialize_all = dg.define_asset_job(
    "materialize_all",
    selection=dg.AssetSelection.all(),
    description="Materialize every asset of the pipeline (the embedded default's main job).",
)

#: what depends on the WebFace source, redone when the source's data changes
rebuild_from_webface_source = dg.define_asset_job(
    "rebuild_from_webface_source",
    selection=dg.AssetSelection.assets(STEPS["webface_pool"].asset).downstream(include_self=False),
    description="Rebuild every asset downstream of the WebFace source (after its DVC hash changed).",
)

all_jobs = [materialize_all, rebuild_from_webface_source]
