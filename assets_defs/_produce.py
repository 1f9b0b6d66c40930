"""What every step asset does around its one library call.

1. fingerprint the step: code version + validated config + DVC hashes of its inputs;
2. reuse the output when the fingerprint matches the last one and the output still has
   the DVC hash recorded then (so an unchanged rerun redoes no work), else call the
   library step;
3. record the output in DVC (cache + ``dvc.lock``), log the config and counts to MLflow,
   and return the metadata and the DVC md5 as the asset's data version.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image

from assets_defs.steps import Step
from orchestration.resources import DvcResource, MlflowResource, PipelinePaths
from vec2face.config import StepConfig

STAMP_DIR = ".stamps"


def fingerprint(step: Step, config: StepConfig, input_hashes: Mapping[str, str]) -> str:
    blob = json.dumps({"step": step.asset, "code_version": step.code_version,
                       "config": config.model_dump(mode="json"),
                       "inputs": dict(sorted(input_hashes.items()))}, sort_keys=True)
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


def input_hashes(inputs: Mapping[str, Path], dvc: DvcResource) -> dict[str, str]:
    """DVC hashes of upstream outputs, keyed by asset; a missing one names its asset and path."""
    hashes = {}
    for asset, path in inputs.items():
        if not path.exists():
            raise FileNotFoundError(f"input '{asset}' not found at {path}: materialize it first")
        found = dvc.recorded_hash(path)
        hashes[asset] = found if found is not None else dvc.record(path)
    return hashes


def produce(
    context: dg.AssetExecutionContext,
    step: Step,
    config: StepConfig,
    build: Callable[[], Mapping[str, Any]],
    *,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
    counts: Callable[[Mapping[str, Any]], Mapping[str, float]],
    inputs: Mapping[str, Path] | None = None,
    artifacts: Sequence[str] = (),
    preview: str | None = None,
) -> dg.MaterializeResult:
    """Run (or reuse) one step and describe its output.

    Args:
        context: the asset's context (used here only, never passed to the library).
        step: the step's row in :data:`assets_defs.steps.STEPS`.
        config: the validated step config.
        build: calls the library step; returns its summary.
        paths, dvc, mlflow: the resources.
        counts: picks the numeric headline values of a summary (metadata and metrics).
        inputs: upstream asset -> its output folder.
        artifacts: files inside the output to keep with the MLflow run.
        preview: a PNG inside the output to show in the asset's metadata.
    """
    out = paths.output(step.output)
    fp = fingerprint(step, config, input_hashes(inputs or {}, dvc))
    stamp_path = paths.root_dir() / STAMP_DIR / f"{step.asset}.json"
    stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}

    reused = bool(stamp.get("fingerprint") == fp and out.exists() and dvc.record(out) == stamp.get("dvc_md5"))
    if reused:
        context.log.info(f"{step.asset}: inputs, config and code unchanged; reusing {out}")
        summary, md5, run_id = stamp["summary"], stamp["dvc_md5"], stamp.get("mlflow_run_id")
    else:
        context.log.info(f"{step.asset}: writing {out}")
        summary = json.loads(json.dumps(build(), default=str))
        md5 = dvc.record(out)
        with mlflow.start_run(step.asset, tags={"dagster_run_id": context.run.run_id, "dagster_asset": step.asset,
                                                "dvc_stage": step.stage, "dvc_md5": md5}) as tracker:
            tracker.log_params(config.model_dump(mode="json"))
            tracker.log_metrics(counts(summary))
            for name in artifacts:
                if (out / name).exists():
                    tracker.log_artifact(out / name)
            run_id = tracker.run_id
        stamp_path.parent.mkdir(parents=True, exist_ok=True)
        stamp_path.write_text(json.dumps({"fingerprint": fp, "dvc_md5": md5, "summary": summary,
                                          "mlflow_run_id": run_id}, indent=2))

    metadata: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(out)),
        "dvc_md5": md5,
        "dvc_stage": step.stage,
        "reused": reused,
        "mlflow_run_id": run_id or "",
        "mlflow_tracking_uri": mlflow.resolved_uri(),
        **{k: v for k, v in counts(summary).items()},
    }
    markdown = preview_markdown(out / preview) if preview else None
    if markdown:
        metadata["preview"] = dg.MetadataValue.md(markdown)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(md5))
