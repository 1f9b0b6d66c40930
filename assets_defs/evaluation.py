"""What the chain is judged by: dataset reports and the FR benchmark table, with the
promotion of the best FR model in the MLflow registry."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from assets_defs import _configs
from assets_defs._produce import check_sources, produce, step_asset, step_inputs
from assets_defs._registry import (
    REGISTERED_FR_MODEL,
    REGISTERED_GENERATOR,
    promote,
    versions_of_output,
)
from assets_defs.resources import DvcResource, MlflowResource, PipelinePaths
from assets_defs.steps import STEPS
from vec2face.attributes.train import MODEL_FILE
from vec2face.config import load_step_config
from vec2face.fr.benchmark import benchmark_models
from vec2face.reports.dataset_report import CONFIG_SECTION, ReportConfig, write_report
from vec2face.toyfaces.benchmarks import BenchmarksConfig

GROUP = "evaluation"

#: report name -> (asset, folder inside its output) of each dataset the reports compare
REPORTED: dict[str, tuple[str, str]] = {
    "webface_subset": ("webface_subset", ""),
    "hsface": ("hsface_merged", ""),
    "gaussian_ablation": ("gaussian_ablation", "merged"),
}


def report_config(params: dict[str, Any], inputs: Mapping[str, Path]) -> ReportConfig:
    """The ``dataset_reports`` section with the judge and attribute estimator the chain
    made, and its teacher when the section asks for the teacher's figures (names one)."""
    section = _configs.section(params, CONFIG_SECTION)
    estimator = _configs.section(section, "attribute_estimator")
    estimator["checkpoint"] = str(inputs["attribute_estimator"] / MODEL_FILE)
    overrides = {"judge": str(inputs["fr_judge"]), "attribute_estimator": estimator}
    if section.get("teacher"):
        overrides["teacher"] = str(inputs["fr_teacher"])
    return load_step_config(ReportConfig, CONFIG_SECTION, params, overrides)


def _report_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    return {
        f"{name}_{k}": float(v)
        for name, head in summary["datasets"].items()
        for k, v in head.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


@step_asset("dataset_reports", GROUP, {"html", "parquet"})
def dataset_reports(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Quality reports of the WebFace subset, HSFace and the gaussian ablation,
    side by side: intra/inter-class noise, genuine/impostor overlap and EER, pose and age,
    all measured by the judge (teacher figures beside them); one HTML page per dataset and
    a comparison (``index.html``)."""
    step = STEPS["dataset_reports"]
    params = paths.read_params()
    inputs = step_inputs(step, paths)
    config = report_config(params, inputs)
    estimator = config.attribute_estimator
    check_sources(
        {
            f"{CONFIG_SECTION}.reference_centers": config.reference_centers,
            f"{CONFIG_SECTION}.attribute_estimator.sixdrepnet": estimator.sixdrepnet
            if estimator
            else None,
            f"{CONFIG_SECTION}.attribute_estimator.magface": estimator.magface
            if estimator
            else None,
        }
    )
    datasets = {name: inputs[asset] / sub for name, (asset, sub) in REPORTED.items()}
    out = paths.output(step.output)

    def build(_tracker):
        return write_report(datasets, config, out)

    return produce(
        context, step, config, build, paths=paths, dvc=dvc, mlflow=mlflow, counts=_report_counts,
        artifacts=("index.html", "comparison"), preview="comparison/intra_class.png",
    )


#: row name -> how its model is found: the teacher, and the two FR models of fr_model
EVALUATED = ("teacher", "webface", "hsface")


def promote_fr_model(
    mlflow: MlflowResource, fr_model_md5: str, averages: Mapping[str, float]
) -> dict[str, Any]:
    """Tag the ``fr-model`` versions made from the fr_model output ``fr_model_md5`` with their
    benchmark average and move the ``champion`` alias when one beats the champion."""
    candidates = {}
    for version in mlflow.model_versions(REGISTERED_FR_MODEL):
        trained_on = version.tags.get("trained_on")
        if version.tags.get("dvc_md5") == fr_model_md5 and trained_on in averages:
            candidates[str(version.version)] = averages[trained_on]
    return promote(mlflow, REGISTERED_FR_MODEL, candidates, "benchmark_average")


def promote_generator(
    mlflow: MlflowResource, generator_md5: str | None, hsface_average: float
) -> dict[str, Any]:
    """Tag the ``vec2face-generator`` version made from the fmae_generator output
    ``generator_md5`` with the benchmark average of the FR model trained on its HSFace
    (the paper's figure of merit for a generator) and make it ``champion`` when that beats
    the champion's: the generator the next refresh warm-starts from."""
    versions = versions_of_output(mlflow, REGISTERED_GENERATOR, generator_md5)
    candidates = dict.fromkeys(versions, hsface_average)
    return promote(mlflow, REGISTERED_GENERATOR, candidates, "hsface_fr_average")


def _accuracy_counts(summary: Mapping[str, Any]) -> dict[str, float]:
    return {
        f"{model}_{name}": float(r["accuracy"])
        for model, sets in summary["results"].items()
        for name, r in sets.items()
    }


@step_asset("benchmark_accuracies", GROUP, {"pytorch", "mlflow"})
def benchmark_accuracies(
    context: dg.AssetExecutionContext,
    paths: PipelinePaths,
    dvc: DvcResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Verification accuracy on the five toy benchmarks and their average (the paper's
    appendix Table 1) for the teacher, the WebFace-trained and the HSFace-trained FR models
    (``<model>.json``, ``accuracies.parquet``, ``table.md``; a zoo teacher's row is its
    manifest's, measured on the same sets); the ``champion`` alias of
    'fr-model' moves to a new model only if its average beats the champion's, and that of
    'vec2face-generator' to the chain's generator only if the HSFace-trained model's average
    beats the one its champion's HSFace reached."""
    step = STEPS["benchmark_accuracies"]
    params = paths.read_params()
    inputs = step_inputs(step, paths)
    benchmarks = load_step_config(BenchmarksConfig, "benchmarks", params)
    models = {name: inputs["fr_teacher"] if name == "teacher" else inputs["fr_model"] / name
              for name in EVALUATED}
    out = paths.output(step.output)

    def build(tracker):
        done = benchmark_models(models, inputs["benchmark_sets"], out, benchmarks=benchmarks,
                                tracker=tracker)
        if done["recorded"]:
            context.log.info(f"benchmark_accuracies: recorded zoo figures of {done['recorded']}")
        results = done["results"]
        averages = {n: results[n]["average"]["accuracy"] for n in ("webface", "hsface")}
        fr_model_md5 = dvc.recorded_hash(inputs["fr_model"])
        # the generator whose HSFace the hsface model trained on (the chain's current one)
        generator_md5 = dvc.recorded_hash(paths.output(STEPS["fmae_generator"].output))
        return {
            "results": results,
            "promotion": promote_fr_model(mlflow, fr_model_md5, averages),
            "generator_promotion": promote_generator(mlflow, generator_md5, averages["hsface"]),
        }

    return produce(
        context, step, benchmarks, build, paths=paths, dvc=dvc, mlflow=mlflow,
        counts=_accuracy_counts, artifacts=("accuracies.parquet",),
    )


all_evaluation_assets = [dataset_reports, benchmark_accuracies]
