"""The one table tying each Dagster asset to its ``dvc.yaml`` stage and output folder.

Assets read their output folder from here, the DVC resource commits the stage that
owns that folder, and the test that compares ``dvc.yaml`` with the asset graph maps
stage names to asset keys through :data:`STEPS` only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One pipeline step as Dagster, DVC and the output tree name it."""

    asset: str         # Dagster asset key (a noun: what the step produces)
    stage: str         # dvc.yaml stage name (``name@key`` for foreach stages)
    output: str        # output folder, relative to the profile's root
    code_version: str  # bump when the library step's output changes for the same config


#: toy world pools that train or feed models (the benchmark pools live in benchmark_sets)
WORLD_POOLS: tuple[str, ...] = ("teacher", "judge", "webface", "pca")

STEPS: dict[str, Step] = {
    s.asset: s
    for s in (
        *(Step(f"{pool}_pool", f"toyfaces@{pool}", f"world/{pool}", "1") for pool in WORLD_POOLS),
        Step("benchmark_sets", "benchmarks", "benchmarks", "1"),
        Step("webface_subset", "webface_subset", "webface_subset", "1"),
    )
}


def step_for_stage(stage: str) -> Step:
    """The step of a ``dvc.yaml`` stage name; KeyError lists the known stages."""
    for step in STEPS.values():
        if step.stage == stage:
            return step
    raise KeyError(f"no asset for dvc stage '{stage}'; known: {', '.join(s.stage for s in STEPS.values())}")
