"""Jobs: verbs over asset selections (asset checks of the selected assets run with them).

The chain has one partitioned step, ``hsface_dataset`` (a partition per shard), so it
runs as three phases, each a job: everything the shards need (``prepare_generation``),
the shards (``generate_hsface_shards``, one run per shard, backfill-able), and everything
made from the shards (``evaluate_hsface``). The sensors in :mod:`orchestration.sensors`
chain the phases; the main job runs them in order in-process.
"""

from __future__ import annotations

import dagster as dg

from assets_defs.models import GENERATOR_INIT_TAG
from assets_defs.steps import STEPS
from assets_defs.zoo import ZOO

HSFACE = dg.AssetSelection.assets(STEPS["hsface_dataset"].asset)

#: the tag of every run the main job launches: the chain sensors leave those phases to it
MAIN_JOB_TAG = ("vec2face/entry", "main_job")
#: the tag of a data refresh: fmae_generator warm-starts from the registry's champion
REGISTRY_WARM_START = (GENERATOR_INIT_TAG, "registry")
_FROM_SHARDS = HSFACE.downstream(include_self=True)

prepare_generation = dg.define_asset_job(
    "prepare_generation",
    selection=dg.AssetSelection.all() - _FROM_SHARDS - ZOO,
    description="Toy world, benchmarks, subset, teacher, judge, attribute estimator, generator and "
    "identity vectors: everything the HSFace shards and the reports need.",
)

generate_hsface_shards = dg.define_asset_job(
    "generate_hsface_shards",
    selection=HSFACE,
    description="Generate HSFace shard by shard (a run per partition; backfill to redo several).",
)

evaluate_hsface = dg.define_asset_job(
    "evaluate_hsface",
    selection=HSFACE.downstream(include_self=False),
    description="Merge the shards, write the dataset reports, train the FR models, benchmark "
    "them and promote the best one.",
)

regenerate_identities = dg.define_asset_job(
    "regenerate_identities",
    selection=dg.AssetSelection.assets(STEPS["identity_vectors"].asset),
    description="Regeneration, first phase: new identity vectors (then, through the sensors, the "
    "dataset, its reports, the FR models and their accuracies).",
)

#: what depends on the WebFace source and precedes the shards; the sensors chain the rest
rebuild_from_webface_source = dg.define_asset_job(
    "rebuild_from_webface_source",
    selection=(
        dg.AssetSelection.assets(STEPS["webface_pool"].asset).downstream(include_self=False)
        - _FROM_SHARDS
    ),
    tags=dict([REGISTRY_WARM_START]),
    description="Rebuild what depends on the WebFace source (after its DVC hash changed) up to "
    "the generator, warm-started from the registry's vec2face-generator champion; the chain "
    "sensors then redo the shards and the evaluation.",
)

build_zoo = dg.define_asset_job(
    "build_zoo",
    selection=ZOO,
    description="Train the toy zoo's models (teacher, judge, attribute estimator, generator) from "
    "the toy world with fixed seeds; each replaces the shipped one only when its figures improve.",
)

#: the whole chain, phase by phase (what the main job runs)
PHASES = (prepare_generation, generate_hsface_shards, evaluate_hsface)

#: the jobs after which the shards are (re)generated
BEFORE_SHARDS = (prepare_generation, regenerate_identities, rebuild_from_webface_source)

all_jobs = [
    prepare_generation,
    generate_hsface_shards,
    evaluate_hsface,
    regenerate_identities,
    rebuild_from_webface_source,
    build_zoo,
]
