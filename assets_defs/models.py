"""The models of the chain: FR teacher and judge, attribute estimator, generator, FR models.

Each asset trains one library model (``fit`` / ``train_attributes``) with the step's
config, hands the library the MLflow run as its tracker (per-epoch metrics, sample
grids, weights) and registers the result in the MLflow model registry.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from assets_defs import _configs
from assets_defs._features import extract
from assets_defs._produce import ModelEntry, check_sources, produce, step_asset, step_inputs
from assets_defs.steps import STEPS, Step
from orchestration.resources import DvcResource, MlflowResource, PipelinePaths
from vec2face.attributes.train import AttributesTrainConfig, train_attributes
from vec2face.config import load_step_config
from vec2face.data.subset import SubsetConfig
from vec2face.errors import ConfigError
from vec2face.fr.profiles import read_backbone_meta
from vec2face.fr.train import fit as fit_fr
from vec2face.fr.train import train_paths
from vec2face.generation.hsface import HSFaceConfig
from vec2face.generator.train import GeneratorTrainConfig, generator_train_config
from vec2face.generator.train import fit as fit_generator

GROUP = "models"


def _fr_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    counts = {
        "num_classes": summary["num_classes"],
        "num_images": summary["num_images"],
        "epochs": summary["epochs"],
    }
    counts.update(
        {
            k.replace("/", "_"): v
            for k, v in (summary.get("metrics") or {}).items()
            if k.startswith("val/") and k.endswith("/accuracy")
        }
    )
    return counts


def _fr_asset(
    step: Step, section: str, description: str, registered: str | None
) -> dg.AssetsDefinition:
    pool, bins = step.inputs

    @step_asset(step.asset, GROUP, {"pytorch", "mlflow"}, description=description)
    def _fr(
        context: dg.AssetExecutionContext,
        paths: PipelinePaths,
        dvc: DvcResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        config = _configs.fr_training(paths.read_params(), section)
        sources = step_inputs(step, paths)
        out = paths.output(step.output)

        def build(tracker):
            return fit_fr(config, train_paths([sources[pool]], out, sources[bins]), tracker)

        models = [ModelEntry(registered, "", pool)] if registered else []
        return produce(
            context,
            step,
            config,
            build,
            paths=paths,
            dvc=dvc,
            mlflow=mlflow,
            counts=_fr_counts,
            artifacts=("metrics.json",),
            models=models,
        )

    return _fr


fr_teacher = _fr_asset(
    STEPS["fr_teacher"],
    "fr_teacher_train",
    "The teacher (feature extractor) the generator learns from: an FR model trained on the "
    "teacher pool (Glint360K's stand-in) with the fr_teacher_train section on the params' "
    "profile, validated on the benchmark sets. Registered as 'fr-teacher'.",
    "fr-teacher",
)

fr_judge = _fr_asset(
    STEPS["fr_judge"],
    "fr_judge_train",
    "The judge (DESIGN 3.1b): an FR model independent of the teacher (own pool, backbone and "
    "seed from fr_judge_train) that scores every generated dataset and never enters a loss.",
    None,
)


def _attribute_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    heldout = summary.get("heldout") or {}
    counts = {"train_images": summary["train_images"], "epochs": summary["epochs"]}
    counts.update({f"heldout_{k}": v for k, v in heldout.items() if isinstance(v, (int, float))})
    return counts


@step_asset("attribute_estimator", GROUP, {"pytorch", "mlflow"})
def attribute_estimator(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The toy pose/age/quality estimator (the stand-in of 6DRepNet, an age model and MagFace),
    trained on a labelled pool's ground truth; the dataset reports use it."""
    step = STEPS["attribute_estimator"]
    config = load_step_config(AttributesTrainConfig, "attributes_train", paths.read_params())
    (pool,) = step_inputs(step, paths).values()
    out = paths.output(step.output)
    return produce(
        context,
        step,
        config,
        lambda tracker: train_attributes(config, pool, out, tracker=tracker),
        paths=paths,
        dvc=dvc,
        mlflow=mlflow,
        counts=_attribute_counts,
        artifacts=("metrics.json",),
    )


def _generator_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    counts = {
        "epochs": summary["epochs"],
        "train_time_s": summary["train_time_s"],
        "training_records": summary["training_data"]["training_lmdb"]["records"],
    }
    counts.update({f"final_{k}": v for k, v in summary["stats"].items()})
    return counts


def generator_config(params: dict[str, Any], teacher_dir: Path) -> GeneratorTrainConfig:
    """The ``generator`` section on the params' profile, with the teacher ``fr_teacher``
    trained (its folder; the backbone named by its ``backbone.json``)."""
    meta = read_backbone_meta(teacher_dir) or {}
    return generator_train_config(
        _configs.profile(params),
        params,
        {"teacher": meta.get("backbone"), "teacher_checkpoint": str(teacher_dir)},
    )


@step_asset("fmae_generator", GROUP, {"pytorch", "mlflow"})
def fmae_generator(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The Vec2Face generator (fMAE + image decoder) trained on the WebFace subset: the
    teacher's features of every subset image make the training-layout LMDB
    (``training_data/``), then the generator learns feature -> image. Registered as
    'vec2face-generator'; each epoch's sample grid goes to MLflow."""
    step = STEPS["fmae_generator"]
    params = paths.read_params()
    inputs = step_inputs(step, paths)
    teacher = _configs.fr_model(params, "teacher", inputs["fr_teacher"])
    config = generator_config(params, inputs["fr_teacher"])
    check_sources(
        {
            "generator.lpips_backbone_weights": config.lpips_backbone_weights,
            "generator.mask": config.mask,
        }
    )
    out = paths.output(step.output)

    def build(tracker):
        data = extract(
            teacher,
            "fr_teacher.checkpoint",
            inputs["webface_subset"],
            out / "training_data",
            training_lmdb=out / "training_data" / "train.lmdb",
            flip=False,  # the generator must see which way a head turns (see _features)
        )
        summary = fit_generator(
            config, out / "training_data" / "train.lmdb", out, tracker=tracker, progress=False
        )
        tracker.log_artifact(out / "generator.pt")
        return {**summary, "training_data": data}

    last_grid = f"samples/epoch_{config.epochs - 1:04d}.png"
    return produce(
        context,
        step,
        {"generator": config, "fr_teacher": teacher},
        build,
        paths=paths,
        dvc=dvc,
        mlflow=mlflow,
        counts=_generator_counts,
        preview=last_grid,
        models=[ModelEntry("vec2face-generator", "", "webface_subset")],
    )


def _fr_model_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for name, result in summary.items():
        counts.update({f"{name}_{k}": v for k, v in _fr_counts(result).items()})
    return counts


#: the FR models of the paper's appendix Table 1: trained on real and on synthetic data
FR_MODEL_DATA = {"webface": "webface_subset", "hsface": "hsface_merged"}


def same_size(params: dict[str, Any]) -> int:
    """The identity count both FR models train on; the subset and HSFace must agree."""
    subset = load_step_config(SubsetConfig, "subset", params).identities
    hsface = load_step_config(HSFaceConfig, "hsface", params).num_identities
    if subset != hsface:
        raise ConfigError(
            f"fr_model compares datasets of the same size, but subset.identities is "
            f"{subset} and hsface.identities is {hsface}"
        )
    return subset


@step_asset("fr_model", GROUP, {"pytorch", "mlflow"})
def fr_model(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Two FR models with the fr_train recipe, one on the WebFace subset (``webface/``) and one
    on HSFace of the same identity count (``hsface/``); both registered as 'fr-model'."""
    step = STEPS["fr_model"]
    params = paths.read_params()
    same_size(params)
    config = _configs.fr_training(params, "fr_train")
    inputs = step_inputs(step, paths)
    out = paths.output(step.output)

    def build(tracker):
        results = {}
        for name, data in FR_MODEL_DATA.items():
            context.log.info(f"fr_model: training on {data}")
            results[name] = fit_fr(
                config,
                train_paths([inputs[data]], out / name, inputs["benchmark_sets"]),
                tracker.scoped(name),
            )
            results[name].pop("history", None)
        return results

    return produce(
        context,
        step,
        config,
        build,
        paths=paths,
        dvc=dvc,
        mlflow=mlflow,
        counts=_fr_model_counts,
        models=[
            ModelEntry("fr-model", name, data, {"trained_on": name})
            for name, data in FR_MODEL_DATA.items()
        ],
    )


all_model_assets = [fr_teacher, fr_judge, attribute_estimator, fmae_generator, fr_model]
