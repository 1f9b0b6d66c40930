"""``vec2face report``: dataset-quality reports of one or several datasets, side by side."""

from __future__ import annotations

from pathlib import Path

import click

from vec2face.cli._common import echo_json, params_option


@click.command()
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option(
    "--judge", default=None, type=click.Path(), help="judge FR weights (file or fr-train folder)"
)
@click.option("--judge-backbone", default=None, help="judge backbone name (e.g. tiny, r100)")
@click.option(
    "--name", "names", multiple=True,
    help="report name of each DATASET, in order (default: the folder/file name)",
)
@click.option(
    "--attributes", default=None, type=click.Path(dir_okay=False),
    help="toy attribute estimator weights (dataset_reports.attribute_estimator.checkpoint)",
)
@click.option("--teacher", default=None, type=click.Path(), help="teacher FR weights (optional)")
@click.option("--teacher-backbone", default=None, help="teacher backbone name")
@click.option(
    "--reference", default=None, type=click.Path(dir_okay=False),
    help="(R, D) .npy of a real reference set's identity centers (judge space), for leakage",
)
@click.option("--max-images", type=int, default=None, help="sample whole identities up to this")
@click.option("--impostor-pairs", type=int, default=None, help="sampled impostor pairs")
@click.option("--seed", type=int, default=None, help="seed of the samples")
@click.option(
    "--cache-dir", default=None, type=click.Path(file_okay=False),
    help="feature cache folder (default OUT/cache)",
)
@params_option
def report(
    datasets, out, judge, judge_backbone, names, attributes, teacher, teacher_backbone, reference,
    max_images, impostor_pairs, seed, cache_dir, params,
) -> None:
    """Write per-dataset reports (JSON, Parquet, PNG, HTML) and a comparison of DATASETS.

    Settings come from the ``dataset_reports`` section of --params; flags given here win.
    Prints the headline figures of each dataset as JSON.
    """
    from vec2face.config import load_step_config, read_params
    from vec2face.errors import ConfigError
    from vec2face.reports.dataset_report import CONFIG_SECTION, ReportConfig, write_report

    if names and len(names) != len(datasets):
        raise ConfigError(f"--name given {len(names)} times for {len(datasets)} datasets")
    labels = list(names) or [Path(d).resolve().name.removesuffix(".lmdb") for d in datasets]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"dataset names must differ, got {labels}; pass --name for each")
    overrides = {}
    if attributes is not None:
        section = read_params(params).get(CONFIG_SECTION) or {} if params else {}
        estimator = dict(section.get("attribute_estimator") or {}, checkpoint=attributes)
        overrides["attribute_estimator"] = estimator
    cfg = load_step_config(
        ReportConfig,
        CONFIG_SECTION,
        params,
        {
            **overrides,
            "judge": judge,
            "judge_backbone": judge_backbone,
            "teacher": teacher,
            "teacher_backbone": teacher_backbone,
            "reference_centers": reference,
            "max_images": max_images,
            "impostor_pairs": impostor_pairs,
            "seed": seed,
        },
    )
    echo_json(write_report(dict(zip(labels, datasets, strict=True)), cfg, out, cache_dir=cache_dir))
