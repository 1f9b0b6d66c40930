"""Asset checks: Great Expectations suites run on each output as it is materialized.

Each check turns an output into small tables (one row per image, per identity, per
set), validates them with a GX expectation suite, and reports every expectation's
outcome as metadata. The checks are blocking: a failure stops downstream assets.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from assets_defs.steps import STEPS
from orchestration.resources import PipelinePaths
from vec2face.config import load_step_config
from vec2face.data import decode_image, open_dataset, read_bin, read_manifest
from vec2face.data.subset import MANIFEST_NAME, SubsetConfig
from vec2face.errors import Vec2FaceError
from vec2face.toyfaces.benchmarks import BenchmarksConfig

#: the image size every FR dataset of the pipeline holds (DESIGN 3.1)
IMAGE_SIZE = 112
#: images decoded by the subset check; larger subsets are checked on a seeded sample
MAX_DECODED = 50_000


def validate(tables: dict[str, tuple[pd.DataFrame, Iterable[Any]]]) -> tuple[bool, dict[str, Any]]:
    """Validate each ``name -> (frame, expectations)`` with GX; (all passed, metadata)."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_pandas("outputs")
    passed, metadata, failed = True, {}, []
    for name, (frame, expectations) in tables.items():
        batch = (source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
                 .get_batch(batch_parameters={"dataframe": frame}))
        suite = gx.ExpectationSuite(name=f"{name}_suite")
        for expectation in expectations:
            suite.add_expectation(expectation)
        result = batch.validate(suite)
        passed &= bool(result.success)
        for r in result.results:
            cfg = r.expectation_config
            label = f"{name}.{cfg.type}" + (f"[{cfg.kwargs['column']}]" if "column" in cfg.kwargs else "")
            observed = r.result.get("observed_value", r.result.get("unexpected_count"))
            metadata[label] = f"{'ok' if r.success else 'FAILED'} (observed {observed})"
            if not r.success:
                failed.append(label)
    metadata["failed_expectations"] = ", ".join(failed) or "none"
    return passed, metadata


def subset_tables(out: Path, config: SubsetConfig) -> dict[str, tuple[pd.DataFrame, list]]:
    """Per-image and per-identity tables of a written subset, with their expectations."""
    import great_expectations.expectations as gxe

    manifest = read_manifest(out / MANIFEST_NAME)
    with open_dataset(out / "train.lmdb") as ds:
        labels = ds.labels.astype(np.int64)
        picked = np.arange(len(ds))
        if len(ds) > MAX_DECODED:
            picked = np.sort(np.random.default_rng(0).choice(len(ds), MAX_DECODED, replace=False))
        rows = []
        for pos in picked:
            try:
                h, w = decode_image(ds.read_raw(int(pos))[0], ds.location(int(pos))).shape[:2]
                rows.append((int(pos), int(labels[pos]), h, w, True))
            except Vec2FaceError:
                rows.append((int(pos), int(labels[pos]), 0, 0, False))
    images = pd.DataFrame(rows, columns=["record", "label", "height", "width", "readable"])
    # the manifest describes the LMDB row for row: same count, same label per record
    manifest_labels = manifest["label"].to_numpy() if len(manifest) == len(labels) else None
    images["manifest_label"] = (manifest_labels[images["record"]] if manifest_labels is not None
                                else -1)
    identities = pd.Series(labels).value_counts().rename_axis("label").reset_index(name="images")
    return {
        "subset_images": (images, [
            gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
            gxe.ExpectColumnValuesToBeBetween(column="height", min_value=IMAGE_SIZE, max_value=IMAGE_SIZE),
            gxe.ExpectColumnValuesToBeBetween(column="width", min_value=IMAGE_SIZE, max_value=IMAGE_SIZE),
            gxe.ExpectColumnPairValuesToBeEqual(column_A="label", column_B="manifest_label"),
        ]),
        "subset_identities": (identities, [
            gxe.ExpectTableRowCountToEqual(value=config.identities),
            gxe.ExpectColumnMinToBeBetween(column="images", min_value=config.min_images),
        ]),
        "subset_manifest": (manifest, [
            gxe.ExpectTableRowCountToEqual(value=len(labels)),
            gxe.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=config.identities,
                                                        max_value=config.identities),
        ]),
    }


@dg.asset_check(asset=STEPS["webface_subset"].asset, blocking=True)
def webface_subset_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """Identity count, images per identity >= min_images, every image readable and
    112x112, and a manifest matching the LMDB record for record."""
    config = load_step_config(SubsetConfig, "subset", paths.read_params())
    out = paths.output(STEPS["webface_subset"].output)
    try:
        tables = subset_tables(out, config)
    except (Vec2FaceError, OSError, KeyError) as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": f"{exc.__class__.__name__}: {exc}"})
    passed, metadata = validate(tables)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


def benchmark_table(out: Path, config: BenchmarksConfig) -> pd.DataFrame:
    """One row per configured set: whether its .bin reads, its pairs, genuine pairs, images."""
    rows = []
    for name in config.sets:
        try:
            images, issame = read_bin(out / f"{name}.bin")
            rows.append((name, True, len(issame), int(sum(issame)), len(images)))
        except Vec2FaceError:
            rows.append((name, False, 0, 0, 0))
    return pd.DataFrame(rows, columns=["set", "readable", "pairs", "genuine", "images"])


@dg.asset_check(asset=STEPS["benchmark_sets"].asset, blocking=True)
def benchmark_sets_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """Every configured set present and readable, with the configured pair count, half genuine."""
    import great_expectations.expectations as gxe

    config = load_step_config(BenchmarksConfig, "benchmarks", paths.read_params())
    table = benchmark_table(paths.output(STEPS["benchmark_sets"].output), config)
    p = config.pairs
    passed, metadata = validate({"benchmark_sets": (table, [
        gxe.ExpectColumnDistinctValuesToEqualSet(column="set", value_set=list(config.sets)),
        gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="pairs", min_value=p, max_value=p),
        gxe.ExpectColumnValuesToBeBetween(column="genuine", min_value=p // 2, max_value=p // 2),
        gxe.ExpectColumnValuesToBeBetween(column="images", min_value=2 * p, max_value=2 * p),
    ])})
    metadata["sets"] = ", ".join(config.sets)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)
