"""The one table tying each Dagster asset to its ``dvc.yaml`` stage, output folder and inputs.

Assets read their output folder and upstream assets from here, the DVC resource commits
the stage that owns that folder, and the test that compares ``dvc.yaml`` with the asset
graph maps stage names to asset keys through :data:`STEPS` only.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every asset the step depends on in the graph: its inputs, then ``after``."""
        return (*self.inputs, *self.after)


#: toy world pools that train or feed models (the benchmark pools live in benchmark_sets)
WORLD_POOLS: tuple[str, ...] = ("teacher", "judge", "webface", "pca")

#: the pool the toy attribute estimator learns pose/age/quality from (ground truth labels)
ATTRIBUTE_POOL = "judge_pool"

STEPS: dict[str, Step] = {
    s.asset: s
    for s in (
        *(Step(f"{pool}_pool", f"toyfaces@{pool}", f"world/{pool}", "2") for pool in WORLD_POOLS),
        Step("benchmark_sets", "benchmarks", "benchmarks", "2"),
        Step("webface_subset", "webface_subset", "webface_subset", "1", ("webface_pool",)),
        Step("fr_teacher", "fr_teacher", "fr_teacher", "1", ("teacher_pool", "benchmark_sets")),
        Step("fr_judge", "fr_judge", "fr_judge", "1", ("judge_pool", "benchmark_sets")),
        Step(
            "attribute_estimator",
            "attribute_estimator",
            "attribute_estimator",
            "1",
            (ATTRIBUTE_POOL,),
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
            "5",
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
            "1",
            ("webface_subset", "hsface_merged", "benchmark_sets"),
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


def step_for_stage(stage: str) -> Step:
    """The step of a ``dvc.yaml`` stage name; KeyError lists the known stages."""
    for step in STEPS.values():
        if step.stage == stage:
            return step
    raise KeyError(
        f"no asset for dvc stage '{stage}'; known: {', '.join(s.stage for s in STEPS.values())}"
    )
