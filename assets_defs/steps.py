"""The one table tying each Dagster asset to its ``dvc.yaml`` stage, output folder and inputs.

Assets read their output folder and upstream assets from here, the DVC resource commits
the stage that owns that folder, and the test that compares ``dvc.yaml`` with the asset
graph maps stage names to asset keys through :data:`STEPS` only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vec2face.zoo.sources import model_sources


@dataclass(frozen=True)
class Step:
    """One pipeline step as Dagster, DVC and the output tree name it."""

    asset: str  # Dagster asset key (a noun: what the step produces)
    stage: str  # dvc.yaml stage name (``name@key`` for foreach stages)
    output: str  # output folder, relative to the profile's root
    code_version: str  # bump when the library step's output changes for the same config
    inputs: tuple[str, ...] = ()  # upstream assets whose outputs the step reads
    # Upstream assets the step only waits for: their blocking checks must pass before it runs
    # (a dataset that fails its judge report is not trained on). Their outputs are not read,
    # so they stay out of the step's fingerprint; dvc.yaml lists them as deps all the same,
    # DVC having no ordering-only dependency.
    after: tuple[str, ...] = ()
    # An off-the-shelf model (DESIGN 2.1b): the zoo entry that provides it (``sources.<zoo>``
    # picks zoo or train) and the inputs it reads only when it is trained in the chain.
    zoo: str | None = None
    trained_inputs: tuple[str, ...] = ()

    def for_source(self, source: str) -> Step:
        """This step as the chain runs it when its model comes from ``source``."""
        if source == "train":
            return replace(self, inputs=(*self.inputs, *self.trained_inputs))
        return self

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every asset the step depends on in the graph: its inputs, then ``after``."""
        return (*self.inputs, *self.after)


#: toy world pools that train or feed models (the benchmark pools live in benchmark_sets)
WORLD_POOLS: tuple[str, ...] = ("teacher", "judge", "webface", "pca")

#: pools the chain renders only to train an off-the-shelf model itself (``sources: train``);
#: their sizes live under ``world.model_pools``, the others' under ``world.pools``
MODEL_POOLS: tuple[str, ...] = ("teacher", "judge")

#: the pool the toy attribute estimator learns pose/age/quality from (ground truth labels)
ATTRIBUTE_POOL = "judge_pool"

STEPS: dict[str, Step] = {
    s.asset: s
    for s in (
        *(Step(f"{pool}_pool", f"toyfaces@{pool}", f"world/{pool}", "2") for pool in WORLD_POOLS),
        Step("benchmark_sets", "benchmarks", "benchmarks", "2"),
        Step("webface_subset", "webface_subset", "webface_subset", "1", ("webface_pool",)),
        Step(
            "fr_teacher",
            "fr_teacher",
            "fr_teacher",
            "2",
            zoo="teacher",
            trained_inputs=("teacher_pool", "benchmark_sets"),
        ),
        Step(
            "fr_judge",
            "fr_judge",
            "fr_judge",
            "2",
            zoo="judge",
            trained_inputs=("judge_pool", "benchmark_sets"),
        ),
        Step(
            "attribute_estimator",
            "attribute_estimator",
            "attribute_estimator",
            "2",
            zoo="attributes",
            trained_inputs=(ATTRIBUTE_POOL,),
        ),
        Step(
            "fmae_generator",
            "fmae_generator",
            "fmae_generator",
            "4",
            ("webface_subset", "fr_teacher"),
        ),
        Step(
            "identity_vectors",
            "identity_vectors",
            "identity_vectors",
            "1",
            ("pca_pool", "fr_teacher"),
        ),
        # the estimator fills the manifest's attribute columns; the teacher steers AttrOP
        Step(
            "hsface_dataset",
            "hsface_dataset",
            "hsface",
            "5",  # 5: images through the generator's bf16 weight copy on CPU
            ("fmae_generator", "identity_vectors", "attribute_estimator", "fr_teacher"),
        ),
        Step("hsface_merged", "hsface_merged", "hsface_merged", "1", ("hsface_dataset",)),
        Step(
            "gaussian_ablation",
            "gaussian_ablation",
            "gaussian_ablation",
            "6",  # 6: its own identity count (gaussian_ablation.n)
            ("fmae_generator", "attribute_estimator", "fr_teacher"),
        ),
        Step(
            "dataset_reports",
            "dataset_reports",
            "dataset_reports",
            "1",
            (
                "webface_subset",
                "hsface_merged",
                "gaussian_ablation",
                "fr_judge",
                "fr_teacher",
                "attribute_estimator",
            ),
        ),
        Step(
            "fr_model",
            "fr_model",
            "fr_model",
            "2",  # 2: no validation pass inside the training (benchmark_accuracies scores)
            ("webface_subset", "hsface_merged"),
            after=("dataset_reports",),
        ),
        Step(
            "benchmark_accuracies",
            "benchmark_accuracies",
            "benchmark_accuracies",
            "1",
            ("fr_teacher", "fr_model", "benchmark_sets"),
        ),
    )
}


def chain_steps(params: dict[str, Any] | None) -> dict[str, Step]:
    """The steps of the chain that ``params`` describes: each off-the-shelf model's step as
    its ``sources`` entry runs it, and the pools of models the chain trains (only those).

    :data:`STEPS` is every step there can be; this is the graph Dagster builds and
    ``dvc.yaml`` describes (``dvc.yaml`` for the default sources: every model from the zoo).
    """
    sources = model_sources(params).model_dump()
    steps = {n: s.for_source(sources[s.zoo]) if s.zoo else s for n, s in STEPS.items()}
    used = {u for s in steps.values() for u in s.upstream}
    return {
        n: s for n, s in steps.items() if not (n in {f"{p}_pool" for p in MODEL_POOLS}
                                                and n not in used)
    }


def step_for_stage(stage: str) -> Step:
    """The step of a ``dvc.yaml`` stage name; KeyError lists the known stages."""
    for step in STEPS.values():
        if step.stage == stage:
            return step
    raise KeyError(
        f"no asset for dvc stage '{stage}'; known: {', '.join(s.stage for s in STEPS.values())}"
    )
