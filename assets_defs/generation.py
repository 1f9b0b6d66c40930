"""Synthetic data: identity vectors, the HSFace dataset shard by shard, its merged form,
and the no-filter gaussian ablation the dataset reports compare it with."""

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel, Field

from assets_defs import _configs
from assets_defs._produce import input_hashes, produce, step_asset, step_inputs
from assets_defs.freshness import Provenance, is_current, last_materialization
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import STEPS
from vec2face.attributes.train import MODEL_FILE
from vec2face.config import StepConfig, load_step_config
from vec2face.errors import ConfigError, DataFormatError
from vec2face.fr.profiles import write_model_features
from vec2face.hsface.identities import IdentitiesConfig, make_identities
from vec2face.hsface.merge import find_shards, merge_shards
from vec2face.hsface.models import generation_settings as library_settings
from vec2face.hsface.models import load_generation_models
from vec2face.hsface.writer import (
    SUMMARY_FILE,
    HSFaceConfig,
    generate_hsface,
    read_shard_info,
    shard_name,
)
from vec2face.utils.hashing import file_sha256

GROUP = "generation"

IDENTITIES_FILE = "identities.npy"
GENERATOR_FILE = "generator.pt"

#: a failed shard is retried alone (a worker lost, a full disk freed): twice, 10 s apart
SHARD_RETRY = dg.RetryPolicy(max_retries=2, delay=10)


class GaussianAblationConfig(StepConfig):
    """The ``gaussian_ablation`` section: how the ablation's identity vectors differ from
    the ``identities`` section (dimension stays the same)."""

    n: int | None = Field(
        None,
        gt=0,
        description="identities of the ablation (default: identities.n); the reports read "
        "at most dataset_reports.max_images of it, so more than that buys nothing",
    )
    sampler: Literal["pca", "gaussian"] = Field("gaussian", description="identity sampler")
    threshold: float = Field(
        1.0, gt=-1.0, le=1.0, description="cosine threshold; 1.0 keeps every candidate (no filter)"
    )
    seed: int = Field(1, description="seed of the candidate stream")


def _identity_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    counts = {k: summary[k] for k in ("n", "dim", "threshold", "acceptance_rate", "candidates")}
    if summary.get("max_pairwise_cosine_sampled") is not None:
        counts["max_pairwise_cosine_sampled"] = summary["max_pairwise_cosine_sampled"]
    return counts


@step_asset("identity_vectors", GROUP, {"numpy"})
def identity_vectors(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Far-apart identity vectors (the paper's identity sampling): the pca sampler fitted on
    the teacher's identity centers of the pca pool (MS1MV2's stand-in, ``reference/``), kept
    only when their cosine to every vector kept before is below the threshold
    (``identities.npy``)."""
    step = STEPS["identity_vectors"]
    params = paths.read_params()
    inputs = step_inputs(step, paths)
    out = paths.output(step.output)
    teacher = _configs.fr_model(params, "teacher", inputs["fr_teacher"])
    config = load_step_config(
        IdentitiesConfig,
        "identities",
        params,
        {"reference": str(out / "reference" / "centers.npy")},
    )

    def build(_tracker):
        reference = write_model_features(
            teacher, inputs["pca_pool"], out / "reference", config_key="fr_teacher.checkpoint"
        )
        return {**make_identities(config, out / IDENTITIES_FILE), "reference": reference}

    return produce(
        context, step, {"identities": config, "fr_teacher": teacher}, build, paths=paths, dvc=dvc,
        mlflow=mlflow, counts=_identity_counts,
    )


def hsface_config(params: dict[str, Any]) -> HSFaceConfig:
    return load_step_config(HSFaceConfig, "hsface", params)


def shard_keys(params: dict[str, Any]) -> list[str]:
    """The partition keys of ``hsface_dataset``: one per shard, named like the shard folders."""
    return [f"{k:05d}" for k in range(hsface_config(params).num_shards)]


def generation_settings(
    params: dict[str, Any], config: HSFaceConfig, inputs: Mapping[str, Path]
) -> dict[str, BaseModel]:
    """What the images and manifest of ``config`` depend on besides the input files, as
    ``vec2face generate`` reads it, on the estimator and the teacher the chain made."""
    return library_settings(
        config,
        params,
        estimator=inputs["attribute_estimator"] / MODEL_FILE,
        teacher=inputs["fr_teacher"],
    )


def _shard_version(shard_dir: Path) -> str | None:
    """A complete shard's content version (its LMDB's sha256); None while incomplete."""
    if read_shard_info(shard_dir) is None:
        return None
    return file_sha256(shard_dir / "train.lmdb")


def _generate_shard(
    context: dg.AssetExecutionContext,
    config: HSFaceConfig,
    settings: Mapping[str, BaseModel],
    inputs: Mapping[str, Path],
    hashes: Mapping[str, str],
    out: Path,
    mlflow: MlflowResource,
) -> dict[str, Any]:
    """Generate the run's shard into the dataset folder ``out`` inside an MLflow run; the
    shard's metadata."""
    step, key = STEPS["hsface_dataset"], context.partition_key
    shard_dir = out / "shards" / shard_name(int(key))
    for stale in (shard_dir, out / SUMMARY_FILE):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    tags = {
        "dagster_run_id": context.run.run_id,
        "dagster_asset": step.asset,
        "dagster_partition": key,
        "dvc_stage": step.stage,
        **{f"input.{k}": v for k, v in hashes.items()},
    }
    with mlflow.start_run(f"{step.asset}[{key}]", tags=tags) as tracker:
        generate_hsface(
            config,
            inputs["fmae_generator"] / GENERATOR_FILE,
            inputs["identity_vectors"] / IDENTITIES_FILE,
            out,
            shard=int(key),
            progress=False,
            tracker=tracker,
            **load_generation_models(settings),
        )
        info = read_shard_info(shard_dir)
        if info is None:
            raise DataFormatError(f"{shard_dir}: the shard is incomplete after generation")
        keys = ("identity_start", "identity_stop", "images", "seconds")
        summary = {k: info[k] for k in keys if k in info}
        tracker.log_metrics({k: float(v) for k, v in summary.items()})
    return {
        "path": dg.MetadataValue.path(str(shard_dir)),
        "reused": False,
        "mlflow_run_id": tracker.run_id,
        **summary,
    }


def make_hsface_dataset(params: dict[str, Any]) -> dg.AssetsDefinition:
    """The partitioned ``hsface_dataset`` asset; its shards are fixed by the params' ``hsface``
    section (identities / shard_identities), so changing them needs a definitions reload."""
    step = STEPS["hsface_dataset"]
    partitions = dg.StaticPartitionsDefinition(shard_keys(params))

    @step_asset(
        step.asset, GROUP, {"pytorch", "lmdb"}, partitions_def=partitions, retry_policy=SHARD_RETRY
    )
    def hsface_dataset(
        context: dg.AssetExecutionContext,
        paths: PipelinePaths,
        dvc: DvcResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        """HSFace (the paper's generated dataset), one shard per partition: the generator
        turns each identity vector plus its intra-class variations into images, written as an
        FR-layout LMDB with the vectors and a manifest whose attribute columns the attribute
        estimator fills (the teacher steers AttrOP when the ``hsface`` section asks for it).
        The dataset folder is recorded in DVC once every shard is current."""
        params = paths.read_params()
        config = hsface_config(params)
        key = context.partition_key
        keys = [f"{k:05d}" for k in range(config.num_shards)]
        if key not in keys:
            raise ConfigError(
                f"shard {key} is not one of hsface's {len(keys)} shards "
                "(hsface.identities / hsface.shard_identities changed: reload the definitions)"
            )
        inputs = step_inputs(step, paths)
        hashes = input_hashes(inputs, dvc)
        settings = generation_settings(params, config, inputs)
        out = paths.output(step.output)
        shards = {k: out / "shards" / shard_name(int(k)) for k in keys}
        now = Provenance.of(context, settings, hashes)
        last = last_materialization(context.instance, step.asset, key)
        if is_current(last, now, lambda: _shard_version(shards[key])):
            context.log.info(f"hsface_dataset[{key}]: inputs, settings and code unchanged; "
                             f"reusing {shards[key]}")
            metadata = {**last.metadata, "reused": True}
        else:
            metadata = {
                **_generate_shard(context, config, settings, inputs, hashes, out, mlflow),
                **now.metadata(),
            }
        current = [k == key or is_current(
            last_materialization(context.instance, step.asset, k), now,
            lambda k=k: _shard_version(shards[k]),
        ) for k in keys]
        metadata["shards_current"] = f"{sum(current)}/{len(keys)}"
        metadata.pop("dvc_md5", None)
        if all(current) and (out / SUMMARY_FILE).is_file():
            metadata["dvc_md5"] = dvc.record(out)  # the whole dataset, once every shard is current
            metadata["dvc_stage"] = step.stage
        version = _shard_version(shards[key])
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))

    return hsface_dataset


def complete_shards(params: dict[str, Any], dataset) -> list:
    """The shard folders of a generated dataset, all of them (missing ones are named)."""
    config = hsface_config(params)
    found = find_shards(dataset)
    if len(found) != config.num_shards:
        present = {p.name for p in found}
        missing = [shard_name(k) for k in range(config.num_shards) if shard_name(k) not in present]
        raise DataFormatError(
            f"{dataset}: missing shards {', '.join(missing)} of {config.num_shards}; "
            "materialize those hsface_dataset partitions first"
        )
    return found


def _merge_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    return {
        "identities": summary["identities"],
        "images": summary["images"],
        "shards": len(summary["shards"]),
    }


@step_asset("hsface_merged", GROUP, {"lmdb"})
def hsface_merged(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Every HSFace shard joined into one FR-layout LMDB with its vectors and manifest (what
    the FR training and the reports read)."""
    step = STEPS["hsface_merged"]
    params = paths.read_params()
    (dataset,) = step_inputs(step, paths).values()
    shards = complete_shards(params, dataset)
    # Record the dataset as it is now: the shard that finished last records it too, but two
    # shards finishing at once on two workers may each miss the other's record, which would
    # leave an older hash for this step to compare.
    dvc.record(dataset)
    out = paths.output(step.output)
    return produce(
        context, step, hsface_config(params),
        lambda _tracker: merge_shards(shards, out, overwrite=True), paths=paths, dvc=dvc,
        mlflow=mlflow, counts=_merge_counts, artifacts=("merge.json",),
    )


def _ablation_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    return {
        "identities": summary["merged"]["identities"],
        "images": summary["merged"]["images"],
        **{f"identities_{k}": v for k, v in _identity_counts(summary["identities"]).items()},
    }


@step_asset("gaussian_ablation", GROUP, {"pytorch", "lmdb"})
def gaussian_ablation(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """The ablation the reports compare HSFace with: identity vectors drawn without the PCA
    prior and without the distance filter (``gaussian_ablation`` section), generated with the
    same generator, ``hsface`` settings and models as HSFace (``dataset/``, so its manifest has
    the same estimated columns) and merged (``merged/``)."""
    step = STEPS["gaussian_ablation"]
    params = paths.read_params()
    ablation = load_step_config(GaussianAblationConfig, "gaussian_ablation", params)
    identities = load_step_config(
        IdentitiesConfig, "identities", params, ablation.model_dump(exclude_none=True)
    )
    hsface = hsface_config(params)
    if ablation.n is not None:
        hsface = hsface.model_copy(update={"identities": ablation.n})
    inputs = step_inputs(step, paths)
    settings = generation_settings(params, hsface, inputs)
    out = paths.output(step.output)

    def build(tracker):
        ids = make_identities(identities, out / IDENTITIES_FILE)
        generated = generate_hsface(
            hsface,
            inputs["fmae_generator"] / GENERATOR_FILE,
            out / IDENTITIES_FILE,
            out / "dataset",
            progress=False,
            tracker=tracker,
            **load_generation_models(settings),
        )
        merged = merge_shards(find_shards(out / "dataset"), out / "merged")
        return {"identities": ids, "generated": generated, "merged": merged}

    return produce(
        context, step, {"identities": identities, **settings}, build, paths=paths, dvc=dvc,
        mlflow=mlflow, counts=_ablation_counts,
    )
