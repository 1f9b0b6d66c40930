"""What every step asset does around its library call.

1. fingerprint the step: code version + validated config + DVC hashes of its inputs;
2. reuse the output when the fingerprint matches the last one and the output still has
   the DVC hash recorded then (so an unchanged rerun redoes no work), else clear the
   output folder and call the library step inside an MLflow run (the step logs its
   per-epoch metrics and files to that run through the library's ``Tracker``);
3. record the output in DVC (cache + ``dvc.lock``), log the config and headline values
   to MLflow, register the models the step trains, and return the metadata and the DVC
   md5 as the asset's data version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image
from pydantic import BaseModel

from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import STEPS, Step
from vec2face.errors import ConfigError
from vec2face.tracking import Tracker

STAMP_DIR = ".stamps"

#: a step's validated settings: one config, or several by name (a step reading two sections)
Settings = BaseModel | Mapping[str, BaseModel]


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
    """``dg.asset`` of the step ``name``: its key, upstream assets and code version come from
    :data:`assets_defs.steps.STEPS` (or ``step``, the row as the params' sources resolve it),
    so the graph and ``dvc.yaml`` share one table."""
    step = step or STEPS[name]
    return dg.asset(
        name=step.asset,
        deps=list(step.upstream),
        group_name=group,
        code_version=step.code_version,
        kinds=kinds,
        **kwargs,
    )


def settings_dump(config: Settings) -> dict[str, Any]:
    """JSON-ready values of a config or of a name -> config mapping."""
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    return {name: cfg.model_dump(mode="json") for name, cfg in config.items()}


def fingerprint(step: Step, config: Settings, input_hashes: Mapping[str, str]) -> str:
    blob = json.dumps(
        {
            "step": step.asset,
            "code_version": step.code_version,
            "config": settings_dump(config),
            "inputs": dict(sorted(input_hashes.items())),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


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


def _stamp_path(paths: PipelinePaths, name: str) -> Path:
    return paths.root_dir() / STAMP_DIR / f"{name}.json"


def read_stamp(paths: PipelinePaths, name: str) -> dict[str, Any]:
    path = _stamp_path(paths, name)
    return json.loads(path.read_text()) if path.is_file() else {}


def write_stamp(paths: PipelinePaths, name: str, stamp: Mapping[str, Any]) -> None:
    path = _stamp_path(paths, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamp, indent=2))


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
    hashes = input_hashes(step_inputs(step, paths), dvc)
    fp = fingerprint(step, config, hashes)
    stamp = read_stamp(paths, step.asset)

    reused = bool(
        stamp.get("fingerprint") == fp and out.exists() and dvc.record(out) == stamp.get("dvc_md5")
    )
    if reused:
        context.log.info(f"{step.asset}: inputs, config and code unchanged; reusing {out}")
        summary, md5, run_id = stamp["summary"], stamp["dvc_md5"], stamp.get("mlflow_run_id")
        experiment_id = stamp.get("mlflow_experiment_id")
        versions = stamp.get("model_versions", {})
    else:
        context.log.info(f"{step.asset}: writing {out}")
        if out.exists():
            shutil.rmtree(out)  # the previous version stays in the DVC cache
        tags = {
            "dagster_run_id": context.run.run_id,
            "dagster_asset": step.asset,
            "dvc_stage": step.stage,
        }
        with mlflow.start_run(step.asset, tags=tags) as tracker:
            tracker.log_params({"config": settings_dump(config)})
            # what the step read, as MLflow dataset inputs (a model's training data)
            trained_on = {m.training_data for m in models}
            for name, path in step_inputs(step, paths).items():
                use = "training" if name in trained_on else "input"
                tracker.log_dataset_input(name, path, hashes[name], use)
            summary = json.loads(json.dumps(build(tracker), default=str))
            md5 = dvc.record(out)
            tracker.set_tags({"dvc_md5": md5, **{f"input.{k}": v for k, v in hashes.items()}})
            tracker.log_metrics(counts(summary))
            for name in artifacts:
                if (out / name).exists():
                    tracker.log_artifact(out / name)
            run_id = tracker.run_id
            experiment_id = tracker.experiment_id
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
            version = mlflow.register_model(
                model.name,
                run_id,
                model.artifact_path,
                {
                    **data_tags,
                    "dagster_run_id": context.run.run_id,
                    "dvc_md5": md5,
                    **model.tags,
                },
            )
            versions[f"{model.name}:{model.artifact_path}"] = version
            context.log.info(f"{step.asset}: registered {model.name} version {version}")
        write_stamp(
            paths,
            step.asset,
            {
                "fingerprint": fp,
                "dvc_md5": md5,
                "summary": summary,
                "mlflow_run_id": run_id,
                "mlflow_experiment_id": experiment_id,
                "model_versions": versions,
            },
        )

    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(out)),
        "dvc_md5": md5,
        "dvc_stage": step.stage,
        "reused": reused,
        "mlflow_run_id": run_id or "",
        "mlflow_tracking_uri": mlflow.resolved_uri(),
        **{k: v for k, v in counts(summary).items()},
    }
    if run_id and experiment_id:
        metadata["mlflow_run"] = dg.MetadataValue.url(mlflow.run_url(run_id, experiment_id))
    if versions:
        metadata["registered_versions"] = ", ".join(
            f"{k} v{v}" for k, v in sorted(versions.items())
        )
    shown = sorted(out.glob(preview)) if preview else []
    markdown = preview_markdown(shown[-1]) if shown else None
    if markdown:
        metadata["preview"] = dg.MetadataValue.md(markdown)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(md5))
