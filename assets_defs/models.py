"""The models of the chain: FR teacher and judge, attribute estimator, generator, FR models.

Each asset trains one library model (``fit`` / ``train_attributes``) with the step's
config, hands the library the MLflow run as its tracker (per-epoch metrics, sample
grids, weights) and registers the result in the MLflow model registry.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from assets_defs import _configs
from assets_defs._produce import ModelEntry, check_sources, produce, step_asset, step_inputs
from assets_defs._registry import CHAMPION, REGISTERED_GENERATOR
from assets_defs.generation import GENERATOR_FILE
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import STEPS, Step
from vec2face import zoo
from vec2face.attributes.estimators import load_toy_estimator
from vec2face.attributes.train import MODEL_FILE, AttributesTrainConfig, train_attributes
from vec2face.config import StepConfig, load_step_config
from vec2face.data.subset import SubsetConfig
from vec2face.errors import ConfigError
from vec2face.fr.extract import load_trained_backbone
from vec2face.fr.profiles import read_backbone_meta, write_model_features
from vec2face.fr.train import fit as fit_fr
from vec2face.fr.train import train_paths
from vec2face.generator.train import (
    DISCRIMINATOR_FILE,
    GeneratorTrainConfig,
    generator_train_config,
)
from vec2face.generator.train import fit as fit_generator
from vec2face.hsface.writer import HSFaceConfig
from vec2face.models import load_generator_checkpoint
from vec2face.zoo.sources import zoo_ref

GROUP = "models"

#: input examples of the logged MLflow models (their signatures): FR models and estimators
#: take (N, 3, 112, 112) images in [-1, 1], the generator (N, 512) identity vectors
IMAGE_EXAMPLE = np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
VECTOR_EXAMPLE = np.random.default_rng(0).standard_normal((2, 512)).astype(np.float32)


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


def _zoo_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    counts: dict[str, float] = {"zoo_version": summary["version"]}
    counts.update({f"heldout_{k}": v for k, v in summary["figures"].items()})
    counts.update({f"parameters_{k}": v for k, v in summary["parameters"].items()})
    return counts


def _zoo_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """A zoo manifest as registry version tags (flat strings)."""
    tags = {
        "source": "zoo",
        "zoo.version": str(meta["version"]),
        "zoo.sha256": meta["sha256"],
        "zoo.dtype": meta["dtype"],
        "zoo.command": meta["command"],
        "zoo.code_commit": meta["code_commit"],
        "zoo.architecture": json.dumps(meta["architecture"], sort_keys=True),
        "zoo.data": json.dumps(meta["data"], sort_keys=True),
    }
    tags.update({f"zoo.figure.{k}": f"{v:.6g}" for k, v in meta["figures"].items()})
    return tags


def _from_zoo(
    context: dg.AssetExecutionContext,
    step: Step,
    registered: str | None,
    *,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Materialize an off-the-shelf model from the zoo: verify (size, sha256), export it in the
    layout the chain reads, log it and its manifest, register it with the manifest as tags."""
    ref = zoo_ref(step.zoo)
    meta = zoo.manifest(step.zoo)
    out = paths.output(step.output)

    def build(tracker):
        zoo.export(step.zoo, out)
        for path in sorted(out.iterdir()):
            tracker.log_artifact(path)
        tracker.set_tags(_zoo_tags(meta))
        tracker.log_pytorch_model(zoo.load(step.zoo), "model", IMAGE_EXAMPLE)
        keys = ("version", "sha256", "figures", "parameters", "command", "code_commit")
        return {"source": "zoo", **{k: meta[k] for k in keys}}

    context.log.info(f"{step.asset}: zoo '{step.zoo}' v{ref.version} ({ref.sha256[:12]})")
    models = [ModelEntry(registered, "model", None, _zoo_tags(meta))] if registered else []
    return produce(
        context, step, ref, build, paths=paths, dvc=dvc, mlflow=mlflow, counts=_zoo_counts,
        models=models,
    )


def _fr_asset(step: Step, section: str, description: str, registered: str) -> dg.AssetsDefinition:
    @step_asset(step.asset, GROUP, {"pytorch", "mlflow"}, step=step, description=description)
    def _fr(
        context: dg.AssetExecutionContext,
        paths: PipelinePaths,
        dvc: DvcResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        if not step.inputs:  # sources: zoo
            return _from_zoo(context, step, registered, paths=paths, dvc=dvc, mlflow=mlflow)
        pool, bins = step.inputs
        config = _configs.fr_training(paths.read_params(), section)
        sources = step_inputs(step, paths)
        out = paths.output(step.output)

        def build(tracker):
            summary = fit_fr(config, train_paths([sources[pool]], out, sources[bins]), tracker)
            tracker.log_pytorch_model(load_trained_backbone(out), "model", IMAGE_EXAMPLE)
            return summary

        return produce(
            context, step, config, build, paths=paths, dvc=dvc, mlflow=mlflow, counts=_fr_counts,
            artifacts=("metrics.json",), models=[ModelEntry(registered, "model", pool)],
        )

    return _fr


def fr_teacher(step: Step) -> dg.AssetsDefinition:
    """The teacher asset for the chain's sources (``step``: its resolved row)."""
    return _fr_asset(
        step,
        "fr_teacher_train",
        "The teacher (feature extractor) the generator learns from: the toy zoo's teacher "
        "(sources.teacher: zoo, the stand-in of a pretrained ArcFace model), or an FR model "
        "trained here on the teacher pool with the fr_teacher_train section (train). "
        "Registered as 'fr-teacher'.",
        "fr-teacher",
    )


def fr_judge(step: Step) -> dg.AssetsDefinition:
    """The judge asset for the chain's sources."""
    return _fr_asset(
        step,
        "fr_judge_train",
        "The judge: an FR model independent of the teacher (own pool, backbone "
        "and seed) that scores every generated dataset and never enters a loss; the zoo's "
        "(sources.judge: zoo) or trained here with fr_judge_train. Registered as 'fr-judge'.",
        "fr-judge",
    )


def _attribute_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    heldout = summary.get("heldout") or {}
    counts = {"train_images": summary["train_images"], "epochs": summary["epochs"]}
    counts.update({f"heldout_{k}": v for k, v in heldout.items() if isinstance(v, (int, float))})
    return counts


def attribute_estimator(step: Step) -> dg.AssetsDefinition:
    """The attribute estimator asset for the chain's sources."""

    @step_asset("attribute_estimator", GROUP, {"pytorch", "mlflow"}, step=step)
    def _attribute_estimator(
        context: dg.AssetExecutionContext,
        paths: PipelinePaths,
        dvc: DvcResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        """The toy pose/age/quality estimator (the stand-in of 6DRepNet, an age model and
        MagFace): the zoo's (sources.attributes: zoo) or trained here on a labelled pool's
        ground truth (train); the HSFace manifests and dataset reports use it. Registered as
        'attribute-estimator'."""
        if not step.inputs:
            return _from_zoo(
                context, step, "attribute-estimator", paths=paths, dvc=dvc, mlflow=mlflow
            )
        config = load_step_config(AttributesTrainConfig, "attributes_train", paths.read_params())
        (pool_name, pool), = step_inputs(step, paths).items()
        out = paths.output(step.output)

        def build(tracker):
            summary = train_attributes(config, pool, out, tracker=tracker)
            estimator = load_toy_estimator(out / MODEL_FILE)
            tracker.log_pytorch_model(estimator, "model", IMAGE_EXAMPLE)
            return summary

        return produce(
            context, step, config, build, paths=paths, dvc=dvc, mlflow=mlflow,
            counts=_attribute_counts, artifacts=("metrics.json",),
            models=[ModelEntry("attribute-estimator", "model", pool_name)],
        )

    return _attribute_estimator


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


#: the run tag with which a job asks fmae_generator to warm-start from the registry's champion
GENERATOR_INIT_TAG = "vec2face/generator_init"


class RegistryRef(StepConfig):
    """The registry version a step warm-started from (part of the settings its output is
    made of)."""

    name: str
    alias: str
    version: str
    dvc_md5: str


def registry_champion(
    mlflow: MlflowResource, paths: PipelinePaths
) -> tuple[RegistryRef, Path] | None:
    """The 'vec2face-generator' champion, its generator.pt (and discriminator.pt, when its
    run logged one) downloaded once into ``<root>/.registry/vec2face-generator/v<N>/``:
    (its ref, its generator.pt); None when the registry has no champion."""
    version = mlflow.alias_version(REGISTERED_GENERATOR, CHAMPION)
    if version is None:
        return None
    folder = paths.root_dir() / ".registry" / REGISTERED_GENERATOR / f"v{version.version}"
    # versions registered before the discriminator was logged warm-start the generator only
    mlflow.download_version_files(version, [GENERATOR_FILE], folder, [DISCRIMINATOR_FILE])
    ref = RegistryRef(name=REGISTERED_GENERATOR, alias=CHAMPION, version=str(version.version),
                      dvc_md5=version.tags.get("dvc_md5", ""))
    return ref, folder / GENERATOR_FILE


@step_asset("fmae_generator", GROUP, {"pytorch", "mlflow"})
def fmae_generator(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The Vec2Face generator (fMAE + image decoder) trained on the WebFace subset: the
    teacher's features of every subset image make the training-layout LMDB
    (``training_data/``), then the generator learns feature -> image, warm-started from the
    toy zoo's generator (``generator.init: zoo``, a ``max_steps`` budget) or from scratch.
    A run tagged ``vec2face/generator_init: registry`` (the regeneration jobs and schedule)
    warm-starts from the registry's 'vec2face-generator' champion instead, when there is
    one. Registered as 'vec2face-generator'; each epoch's sample grid goes to MLflow."""
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
    fit_config = config
    settings = {"generator": config, "fr_teacher": teacher}
    if config.init == "zoo":  # another zoo generator warm-starts another run
        settings["init"] = zoo_ref("generator")
    if context.run.tags.get(GENERATOR_INIT_TAG) == "registry":
        champion = registry_champion(mlflow, paths)
        if champion is None:
            context.log.info(f"fmae_generator: no {REGISTERED_GENERATOR}@{CHAMPION} yet; "
                             f"init: {config.init}")
        else:
            ref, checkpoint = champion
            context.log.info(f"fmae_generator: warm start from {ref.name} v{ref.version} "
                             f"({CHAMPION})")
            fit_config = config.model_copy(update={"init": str(checkpoint)})
            settings["init"] = ref  # another champion, another run

    def build(tracker):
        data = write_model_features(
            teacher,
            inputs["webface_subset"],
            out / "training_data",
            config_key="fr_teacher.checkpoint",
            training_lmdb=out / "training_data" / "train.lmdb",
            # per-image features, not flip-summed: a flip-summed feature is the same for a
            # face and its mirror, so a generator conditioned on it could not know which way
            # a head turns, and its identity loss would pull every image towards a frontal,
            # mirror-symmetric one
            flip=False,
        )
        summary = fit_generator(
            fit_config, out / "training_data" / "train.lmdb", out, tracker=tracker,
            progress=False,
        )
        tracker.log_artifact(out / GENERATOR_FILE)
        tracker.log_artifact(out / DISCRIMINATOR_FILE)  # a warm start takes both networks
        generator, _ = load_generator_checkpoint(out / GENERATOR_FILE)
        tracker.log_pytorch_model(generator, "model", VECTOR_EXAMPLE)
        return {**summary, "training_data": data}

    return produce(
        context, step, settings, build, paths=paths, dvc=dvc, mlflow=mlflow,
        counts=_generator_counts, preview="samples/epoch_*.png",
        models=[ModelEntry(REGISTERED_GENERATOR, "model", "webface_subset")],
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
                # no in-training validation: benchmark_accuracies scores every pair
                train_paths([inputs[data]], out / name),
                tracker.scoped(name),
            )
            results[name].pop("history", None)
            model = load_trained_backbone(out / name)
            tracker.scoped(name).log_pytorch_model(model, "model", IMAGE_EXAMPLE)
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
            ModelEntry("fr-model", f"{name}/model", data, {"trained_on": name})
            for name, data in FR_MODEL_DATA.items()
        ],
    )


def model_assets(steps: Mapping[str, Step]) -> list[dg.AssetsDefinition]:
    """The model assets of a chain (``steps``: :func:`assets_defs.steps.chain_steps`)."""
    return [
        fr_teacher(steps["fr_teacher"]),
        fr_judge(steps["fr_judge"]),
        attribute_estimator(steps["attribute_estimator"]),
        fmae_generator,
        fr_model,
    ]
