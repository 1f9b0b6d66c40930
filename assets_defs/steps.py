"""The one declaration of the pipeline: every step, what it reads and what it writes.

A row of :data:`STEPS` names the step's Dagster asset (also its ``dvc.yaml`` stage), its
output folder under the output root, the upstream outputs it reads, the ``params.yaml``
keys and library modules it reads, and the command ``dvc repro`` runs for it. The Dagster
assets take their keys, upstream assets and code versions from here, and ``dvc.yaml`` is
generated from it (:mod:`assets_defs.dvc_yaml`; a test fails when the committed file
differs), so the two tools run one graph.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from assets_defs.versions import code_paths, version_of
from vec2face.zoo.sources import model_sources


@dataclass(frozen=True)
class Step:
    """One pipeline step as Dagster, DVC and the output tree name it."""

    asset: str  # Dagster asset key and dvc.yaml stage name (a noun: what the step produces)
    output: str  # output folder, relative to the output root
    params: tuple[str, ...]  # the params.yaml keys the step reads (dotted: world.pools.pca)
    library: tuple[str, ...]  # library modules the step calls (their imports are read too)
    cmd: tuple[str, ...] = ()  # what dvc repro runs: CLI lines, ${root} = the output root
    inputs: tuple[str, ...] = ()  # upstream assets whose outputs the step reads
    # Upstream assets the step only waits for: their blocking checks must pass before it runs
    # (a dataset that fails its judge report is not trained on). Their outputs are not read,
    # so a new version of them does not make the step rerun; dvc.yaml lists them as deps all
    # the same, DVC having no ordering-only dependency.
    after: tuple[str, ...] = ()
    # An off-the-shelf model: the zoo entry that provides it (``sources.<zoo>`` picks zoo or
    # train), and what the step reads besides when it trains the model in the chain.
    zoo: str | None = None
    trained_inputs: tuple[str, ...] = ()
    trained_params: tuple[str, ...] = ()
    trained_library: tuple[str, ...] = ()

    def for_source(self, source: str) -> Step:
        """This step as the chain runs it when its model comes from ``source``."""
        if source == "train":
            return replace(
                self,
                inputs=(*self.inputs, *self.trained_inputs),
                params=(*self.params, *self.trained_params),
                library=(*self.library, *self.trained_library),
                cmd=(),  # dvc.yaml describes the zoo's models (sources: zoo)
            )
        return self

    @property
    def stage(self) -> str:
        """The step's ``dvc.yaml`` stage."""
        return self.asset

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every asset the step depends on in the graph: its inputs, then ``after``."""
        return (*self.inputs, *self.after)

    @property
    def code(self) -> tuple[str, ...]:
        """The code the step reads, as repository paths (``vec2face/fr``, ...)."""
        return code_paths(self.library, reads_presets="profile" in self.params)

    def code_version(self, params: dict[str, Any]) -> str:
        """The step's Dagster code version under ``params``: a hash of the values of its
        params keys and of its code, so a change of either marks the step stale."""
        return version_of(params, self.params, self.code)


#: toy world pools that train or feed models (the benchmark pools live in benchmark_sets)
WORLD_POOLS: tuple[str, ...] = ("teacher", "judge", "webface", "pca")

#: pools the chain renders only to train an off-the-shelf model itself (``sources: train``);
#: their sizes live under ``world.model_pools``, the others' under ``world.pools``
MODEL_POOLS: tuple[str, ...] = ("teacher", "judge")

#: the pool the toy attribute estimator learns pose/age/quality from (ground truth labels)
ATTRIBUTE_POOL = "judge_pool"

def _pool_step(pool: str) -> Step:
    group = "model_pools" if pool in MODEL_POOLS else "pools"
    sizes = f"world.{group}.{pool}"
    return Step(
        f"{pool}_pool",
        f"world/{pool}",
        ("world.seed", sizes),
        ("vec2face.toyfaces.world",),
        (
            f"vec2face toyfaces --pool {pool} --identities ${{{sizes}.identities}} "
            f"--images ${{{sizes}.images}} --seed ${{world.seed}} --out ${{root}}/world/{pool} "
            "--quiet",
        ),
    )


def _zoo_export(name: str, asset: str) -> tuple[str, ...]:
    """The command that writes a zoo model in the layout the chain reads (its manifest
    included, so another zoo version is another DVC hash of the output)."""
    return (f"vec2face zoo export {name} --out ${{root}}/{asset}",)


#: how the generate stages read the generator and the estimator the chain made
_GENERATE = (
    "vec2face generate --generator ${root}/fmae_generator/generator.pt "
    "--attributes ${root}/attribute_estimator/model.pt --params params.yaml --quiet"
)

STEPS: dict[str, Step] = {
    s.asset: s
    for s in (
        *(_pool_step(pool) for pool in WORLD_POOLS),
        Step(
            "benchmark_sets",
            "benchmarks",
            ("benchmarks",),
            ("vec2face.toyfaces.benchmarks",),
            ("vec2face benchmarks make --params params.yaml --out ${root}/benchmarks --quiet",),
        ),
        Step(
            "webface_subset",
            "webface_subset",
            ("subset",),
            ("vec2face.data.subset",),
            (
                "vec2face subset ${root}/world/webface --params params.yaml "
                "--out ${root}/webface_subset",
            ),
            inputs=("webface_pool",),
        ),
        Step(
            "fr_teacher",
            "fr_teacher",
            ("sources.teacher",),
            ("vec2face.zoo",),
            _zoo_export("teacher", "fr_teacher"),
            zoo="teacher",
            trained_inputs=("teacher_pool", "benchmark_sets"),
            trained_params=("profile", "fr_teacher_train"),
            trained_library=("vec2face.fr.train",),
        ),
        Step(
            "fr_judge",
            "fr_judge",
            ("sources.judge",),
            ("vec2face.zoo",),
            _zoo_export("judge", "fr_judge"),
            zoo="judge",
            trained_inputs=("judge_pool", "benchmark_sets"),
            trained_params=("profile", "fr_judge_train"),
            trained_library=("vec2face.fr.train",),
        ),
        Step(
            "attribute_estimator",
            "attribute_estimator",
            ("sources.attributes",),
            ("vec2face.zoo",),
            _zoo_export("attributes", "attribute_estimator"),
            zoo="attributes",
            trained_inputs=(ATTRIBUTE_POOL,),
            trained_params=("attributes_train",),
            trained_library=("vec2face.attributes.train",),
        ),
        # generator.init: zoo warm-starts from the zoo's generator (vec2face/zoo: its files)
        Step(
            "fmae_generator",
            "fmae_generator",
            ("profile", "fr_teacher", "generator"),
            ("vec2face.fr.extract", "vec2face.generator.train", "vec2face.zoo"),
            (
                "vec2face fr extract --role teacher --model ${root}/fr_teacher --params params.yaml"
                " --data ${root}/webface_subset --out ${root}/fmae_generator/training_data"
                " --no-flip --write-training-lmdb ${root}/fmae_generator/training_data/train.lmdb",
                "vec2face generator train --profile ${profile} --params params.yaml"
                " --teacher-checkpoint ${root}/fr_teacher"
                " --data ${root}/fmae_generator/training_data/train.lmdb"
                " --out ${root}/fmae_generator --quiet",
            ),
            inputs=("webface_subset", "fr_teacher"),
        ),
        Step(
            "identity_vectors",
            "identity_vectors",
            ("fr_teacher", "identities"),
            ("vec2face.fr.extract", "vec2face.hsface.identities"),
            (
                "vec2face fr extract --role teacher --model ${root}/fr_teacher --params params.yaml"
                " --data ${root}/world/pca --out ${root}/identity_vectors/reference",
                "vec2face identities sample --params params.yaml"
                " --reference ${root}/identity_vectors/reference/centers.npy"
                " --out ${root}/identity_vectors/identities.npy --quiet",
            ),
            inputs=("pca_pool", "fr_teacher"),
        ),
        # the estimator fills the manifest's attribute columns; the teacher steers AttrOP
        Step(
            "hsface_dataset",
            "hsface",
            ("hsface", "fr_teacher"),
            ("vec2face.hsface.writer", "vec2face.fr.profiles"),
            (
                f"{_GENERATE} --identities ${{root}}/identity_vectors/identities.npy"
                " --out ${root}/hsface",
            ),
            inputs=("fmae_generator", "identity_vectors", "attribute_estimator", "fr_teacher"),
        ),
        Step(
            "hsface_merged",
            "hsface_merged",
            ("hsface",),
            ("vec2face.hsface.merge",),
            ("vec2face data merge ${root}/hsface ${root}/hsface_merged --overwrite",),
            inputs=("hsface_dataset",),
        ),
        Step(
            "gaussian_ablation",
            "gaussian_ablation",
            ("identities", "hsface", "fr_teacher", "gaussian_ablation"),
            (
                "vec2face.hsface.identities",
                "vec2face.hsface.writer",
                "vec2face.hsface.merge",
                "vec2face.fr.profiles",
            ),
            (
                "vec2face identities sample --params params.yaml --n ${gaussian_ablation.n}"
                " --sampler ${gaussian_ablation.sampler}"
                " --threshold ${gaussian_ablation.threshold} --seed ${gaussian_ablation.seed}"
                " --out ${root}/gaussian_ablation/identities.npy --quiet",
                f"{_GENERATE} --identities ${{root}}/gaussian_ablation/identities.npy"
                " --num-identities ${gaussian_ablation.n} --out ${root}/gaussian_ablation/dataset",
                "vec2face data merge ${root}/gaussian_ablation/dataset"
                " ${root}/gaussian_ablation/merged",
            ),
            inputs=("fmae_generator", "attribute_estimator", "fr_teacher"),
        ),
        Step(
            "dataset_reports",
            "dataset_reports",
            ("dataset_reports",),
            ("vec2face.reports.dataset_report",),
            (
                "vec2face report ${root}/webface_subset ${root}/hsface_merged"
                " ${root}/gaussian_ablation/merged --name webface_subset --name hsface"
                " --name gaussian_ablation --judge ${root}/fr_judge"
                " --attributes ${root}/attribute_estimator/model.pt --params params.yaml"
                " --out ${root}/dataset_reports",
            ),
            inputs=(
                "webface_subset",
                "hsface_merged",
                "gaussian_ablation",
                "fr_judge",
                "fr_teacher",
                "attribute_estimator",
            ),
        ),
        # both FR models train on datasets of one identity count (subset = hsface)
        Step(
            "fr_model",
            "fr_model",
            ("profile", "fr_train", "subset.identities", "hsface.identities"),
            ("vec2face.fr.train",),
            tuple(
                f"vec2face fr train --profile ${{profile}} --section fr_train --params params.yaml"
                f" --data ${{root}}/{data} --out ${{root}}/fr_model/{name} --quiet"
                for name, data in (("webface", "webface_subset"), ("hsface", "hsface_merged"))
            ),
            inputs=("webface_subset", "hsface_merged"),
            after=("dataset_reports",),
        ),
        Step(
            "benchmark_accuracies",
            "benchmark_accuracies",
            ("benchmarks",),
            ("vec2face.fr.benchmark",),
            (
                "vec2face fr benchmark --model teacher=${root}/fr_teacher"
                " --model webface=${root}/fr_model/webface --model hsface=${root}/fr_model/hsface"
                " --bins ${root}/benchmarks --params params.yaml --out ${root}/benchmark_accuracies",
            ),
            inputs=("fr_teacher", "fr_model", "benchmark_sets"),
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
