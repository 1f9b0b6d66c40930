"""What every step asset does around its library call.

1. describe what the output would be made of: the asset's code version (its params values
   and code), the DVC hashes of its inputs and its validated settings
   (:class:`assets_defs.freshness.Provenance`);
2. reuse the output when the asset's last materialization was made of the same and the
   output still has its data version (so an unchanged rerun redoes no work), else clear the
   output folder and call the library step inside an MLflow run (the step logs its
   per-epoch metrics and files to that run through the library's ``Tracker``);
3. record the output in DVC (cache + ``dvc.lock``), log the config and headline values
   to MLflow, register the models the step trains, and return the metadata and the DVC
   md5 as the asset's data version.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image

from assets_defs.freshness import (
    Provenance,
    Settings,
    is_current,
    last_materialization,
    reused_result,
    settings_dump,
)
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import STEPS, Step
from vec2face.errors import ConfigError
from vec2face.tracking import Tracker


@dataclass(frozen=True)
class ModelEntry:
    """A model a step registers in the MLflow model registry.

    Attributes:
        name: the registered model (``fr-teacher``, ``vec2face-generator``, ``fr-model``).
        artifact_path: the run's artifact folder holding the model ("" = the run's root).
        training_data: the upstream asset the model learned from (its DVC hash tags the
            version); None for a model that comes from the zoo (its manifest tags it).
        tags: further version tags.
    """

    name: str
    artifact_path: str
    training_data: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


def step_asset(
    name: str, group: str, kinds: set[str], step: Step | None = None, **kwargs: Any
) -> Any:
    """``dg.asset`` of the step ``name``: its key and upstream assets come from
    :data:`assets_defs.steps.STEPS` (or ``step``, the row as the params' sources resolve it),
    so the graph and ``dvc.yaml`` share one table. Its code version depends on the params:
    :func:`assets_defs.build_assets` sets it."""
    step = step or STEPS[name]
    return dg.asset(
        name=step.asset, deps=list(step.upstream), group_name=group, kinds=kinds, **kwargs
    )


def preview_markdown(path: Path, width: int = 448) -> str | None:
    """A PNG shrunk to ``width`` pixels, inlined as Markdown (None when absent)."""
    if not path.is_file():
        return None
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)))
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=True)
    return f"![{path.name}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def step_inputs(step: Step, paths: PipelinePaths) -> dict[str, Path]:
    """Upstream asset -> its output folder, for every input of ``step``."""
    return {name: paths.output(STEPS[name].output) for name in step.inputs}


def input_hashes(inputs: Mapping[str, Path], dvc: DvcResource) -> dict[str, str]:
    """DVC hashes of upstream outputs, keyed by asset; a missing one names its asset and path."""
    hashes = {}
    for asset, path in inputs.items():
        if not path.exists():
            raise FileNotFoundError(f"input '{asset}' not found at {path}: materialize it first")
        found = dvc.recorded_hash(path)
        hashes[asset] = found if found is not None else dvc.record(path)
    return hashes


def check_sources(sources: Mapping[str, str | Path | None]) -> None:
    """Fail before any work when a file named in the config is missing.

    Args:
        sources: config key (``section.field``) -> the path it names (None: not set).

    Raises:
        ConfigError: naming the path and its config key.
    """
    for key, path in sources.items():
        if path is not None and not Path(path).exists():
            raise ConfigError(f"{path} not found (config key {key})")


def _registered_versions(
    context: dg.AssetExecutionContext,
    mlflow: MlflowResource,
    models: Sequence[ModelEntry],
    run_id: str,
    md5: str,
    hashes: Mapping[str, str],
) -> dict[str, str]:
    """Register each of ``models`` from the run's artifacts; ``name:path`` -> version."""
    versions = {}
    for model in models:
        data_tags = (
            {
                "training_data": model.training_data,
                "training_data_dvc_md5": hashes[model.training_data],
            }
            if model.training_data is not None
            else {}
        )
        tags = {**data_tags, "dagster_run_id": context.run.run_id, "dvc_md5": md5, **model.tags}
        version = mlflow.register_model(model.name, run_id, model.artifact_path, tags)
        versions[f"{model.name}:{model.artifact_path}"] = version
        context.log.info(f"{context.asset_key.to_user_string()}: registered {model.name} "
                         f"version {version}")
    return versions


def _metadata(
    step: Step,
    out: Path,
    md5: str,
    summary: Mapping[str, Any],
    counts: Callable[[Mapping[str, Any]], Mapping[str, float]],
    tracker: Tracker,
    mlflow: MlflowResource,
    preview: str | None,
) -> dict[str, Any]:
    """The asset metadata of a new output: where it is, its versions, its headline values."""
    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(out)),
        "dvc_md5": md5,
        "dvc_stage": step.stage,
        "reused": False,
        "mlflow_run_id": tracker.run_id,
        "mlflow_tracking_uri": mlflow.resolved_uri(),
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(tracker.run_id, tracker.experiment_id)),
        **counts(summary),
    }
    shown = sorted(out.glob(preview)) if preview else []
    markdown = preview_markdown(shown[-1]) if shown else None
    if markdown:
        metadata["preview"] = dg.MetadataValue.md(markdown)
    return metadata


def produce(
    context: dg.AssetExecutionContext,
    step: Step,
    config: Settings,
    build: Callable[[Tracker], Mapping[str, Any]],
    *,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
    counts: Callable[[Mapping[str, Any]], Mapping[str, float]],
    artifacts: Sequence[str] = (),
    preview: str | None = None,
    models: Sequence[ModelEntry] = (),
) -> dg.MaterializeResult:
    """Run (or reuse) one step and describe its output.

    Args:
        context: the asset's context (used here only, never passed to the library).
        step: the step's row in :data:`assets_defs.steps.STEPS`.
        config: the validated step config(s).
        build: calls the library step with the run's tracker; returns its summary.
        paths, dvc, mlflow: the resources.
        counts: picks the numeric headline values of a summary (metadata and metrics).
        artifacts: files inside the output to keep with the MLflow run.
        preview: a PNG inside the output to show in the asset's metadata (a glob pattern
            picks the last match in name order, e.g. ``samples/epoch_*.png``).
        models: models to register from the run's artifacts.
    """
    out = paths.output(step.output)
    inputs = step_inputs(step, paths)
    hashes = input_hashes(inputs, dvc)
    now = Provenance.of(context, config, hashes)
    last = last_materialization(context.instance, step.asset)
    if is_current(last, now, lambda: dvc.record(out) if out.exists() else None):
        context.log.info(f"{step.asset}: inputs, settings and code unchanged; reusing {out}")
        return reused_result(last)

    context.log.info(f"{step.asset}: writing {out}")
    if out.exists():
        shutil.rmtree(out)  # the previous version stays in the DVC cache
    tags = {"dagster_run_id": context.run.run_id, "dagster_asset": step.asset,
            "dvc_stage": step.stage}
    with mlflow.start_run(step.asset, tags=tags) as tracker:
        tracker.log_params({"config": settings_dump(config)})
        # what the step read, as MLflow dataset inputs (a model's training data)
        trained_on = {m.training_data for m in models}
        for name, path in inputs.items():
            use = "training" if name in trained_on else "input"
            tracker.log_dataset_input(name, path, hashes[name], use)
        summary = json.loads(json.dumps(build(tracker), default=str))
        md5 = dvc.record(out)
        tracker.set_tags({"dvc_md5": md5, **{f"input.{k}": v for k, v in hashes.items()}})
        tracker.log_metrics(counts(summary))
        for name in artifacts:
            if (out / name).exists():
                tracker.log_artifact(out / name)
    metadata = _metadata(step, out, md5, summary, counts, tracker, mlflow, preview)
    versions = _registered_versions(context, mlflow, models, tracker.run_id, md5, hashes)
    if versions:
        metadata["registered_versions"] = ", ".join(
            f"{k} v{v}" for k, v in sorted(versions.items())
        )
    metadata.update(now.metadata())
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(md5))
