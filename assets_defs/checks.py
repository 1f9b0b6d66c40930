"""Asset checks: Great Expectations suites run on each output as it is materialized.

Each check turns an output into small tables (one row per image, per identity, per
set), validates them with a GX expectation suite, and reports every expectation's
outcome as metadata. The checks are blocking: a failure stops downstream assets.
"""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets_defs.steps import STEPS
from orchestration.resources import PipelinePaths
from vec2face.config import StepConfig, load_step_config
from vec2face.data import decode_image, open_dataset, read_bin, read_manifest
from vec2face.data.subset import MANIFEST_NAME, SubsetConfig
from vec2face.errors import Vec2FaceError
from vec2face.fr.evaluate import BENCHMARK_SETS
from vec2face.generation.hsface import HSFaceConfig
from vec2face.generation.identities import IdentitiesConfig, max_pairwise_cosine
from vec2face.generation.variation import sigma_counts
from vec2face.reports.dataset_report import read_headline
from vec2face.reports.metrics import RateComparison, compare_rates
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
        batch = (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe(name)
            .get_batch(batch_parameters={"dataframe": frame})
        )
        suite = gx.ExpectationSuite(name=f"{name}_suite")
        for expectation in expectations:
            suite.add_expectation(expectation)
        result = batch.validate(suite)
        passed &= bool(result.success)
        for r in result.results:
            cfg = r.expectation_config
            label = f"{name}.{cfg.type}" + (
                f"[{cfg.kwargs['column']}]" if "column" in cfg.kwargs else ""
            )
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
    images["manifest_label"] = (
        manifest_labels[images["record"]] if manifest_labels is not None else -1
    )
    identities = pd.Series(labels).value_counts().rename_axis("label").reset_index(name="images")
    return {
        "subset_images": (
            images,
            [
                gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
                gxe.ExpectColumnValuesToBeBetween(
                    column="height", min_value=IMAGE_SIZE, max_value=IMAGE_SIZE
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="width", min_value=IMAGE_SIZE, max_value=IMAGE_SIZE
                ),
                gxe.ExpectColumnPairValuesToBeEqual(column_A="label", column_B="manifest_label"),
            ],
        ),
        "subset_identities": (
            identities,
            [
                gxe.ExpectTableRowCountToEqual(value=config.identities),
                gxe.ExpectColumnMinToBeBetween(column="images", min_value=config.min_images),
            ],
        ),
        "subset_manifest": (
            manifest,
            [
                gxe.ExpectTableRowCountToEqual(value=len(labels)),
                gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column="label", min_value=config.identities, max_value=config.identities
                ),
            ],
        ),
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
        return dg.AssetCheckResult(
            passed=False, metadata={"error": f"{exc.__class__.__name__}: {exc}"}
        )
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
    passed, metadata = validate(
        {
            "benchmark_sets": (
                table,
                [
                    gxe.ExpectColumnDistinctValuesToEqualSet(
                        column="set", value_set=list(config.sets)
                    ),
                    gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
                    gxe.ExpectColumnValuesToBeBetween(column="pairs", min_value=p, max_value=p),
                    gxe.ExpectColumnValuesToBeBetween(
                        column="genuine", min_value=p // 2, max_value=p // 2
                    ),
                    gxe.ExpectColumnValuesToBeBetween(
                        column="images", min_value=2 * p, max_value=2 * p
                    ),
                ],
            )
        }
    )
    metadata["sets"] = ", ".join(config.sets)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


# ---------------------------------------------------------------------------------------
# identity vectors, HSFace, benchmark accuracies

#: vectors compared with all others by the identity check (all of them up to this count)
MAX_COSINE_ROWS = 20_000


class ExpectationsConfig(StepConfig):
    """Bounds of the checks on generated data (params section ``expectations``)."""

    hsface_max_intra_outlier_rate: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of HSFace images whose judge feature has cosine < "
        "dataset_reports.intra_threshold to their identity center",
    )
    hsface_max_inter_noise_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of HSFace identity centers closer than "
        "dataset_reports.inter_threshold to another (0: no inter-class noise)",
    )
    hsface_inter_noise_reference: str | None = Field(
        None,
        description="a dataset of dataset_reports (e.g. webface_subset, the real data) whose "
        "own inter-class noise rate under the same judge raises the bound when higher: a judge "
        "that confuses real identities at rate r cannot see fewer confusions in synthetic ones",
    )
    hsface_inter_noise_level: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="confidence of the margin added to the reference's rate (bootstrap over "
        "identities of both datasets): HSFace fails only when its rate exceeds the "
        "reference's by more than chance gives at this level",
    )


def identity_tables(
    vectors: np.ndarray, config: IdentitiesConfig
) -> dict[str, tuple[pd.DataFrame, list]]:
    """Per-vector and summary tables of identity vectors, with their expectations."""
    import great_expectations.expectations as gxe

    vectors = np.asarray(vectors)
    finite = np.isfinite(vectors).all(axis=1) if vectors.ndim == 2 else np.zeros(0, bool)
    norms = (
        np.linalg.norm(np.where(np.isfinite(vectors), vectors, 0), axis=1)
        if vectors.ndim == 2
        else []
    )
    rows = pd.DataFrame({"finite": finite, "norm": norms})
    max_cos = None
    if vectors.ndim == 2 and finite.all() and len(vectors) > 1:
        max_cos = max_pairwise_cosine(vectors, sample=MAX_COSINE_ROWS, seed=config.seed)
    summary = pd.DataFrame(
        [
            {
                "count": int(vectors.shape[0]),
                "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
                "max_pairwise_cosine": np.nan if max_cos is None else max_cos,
            }
        ]
    )
    return {
        "identity_vectors": (
            rows,
            [
                gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
                gxe.ExpectColumnValuesToBeBetween(column="norm", min_value=0, strict_min=True),
            ],
        ),
        "identity_summary": (
            summary,
            [
                gxe.ExpectColumnValuesToBeBetween(
                    column="count", min_value=config.n, max_value=config.n
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="dim", min_value=config.dim, max_value=config.dim
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="max_pairwise_cosine", max_value=config.threshold, strict_max=True
                ),
                gxe.ExpectColumnValuesToNotBeNull(column="max_pairwise_cosine"),
            ],
        ),
    }


@dg.asset_check(asset=STEPS["identity_vectors"].asset, blocking=True)
def identity_vectors_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """The configured count and dimension, finite non-zero vectors, and every pair's cosine
    below the threshold (exact up to 20,000 vectors, a 20,000-row sample against all beyond)."""
    config = load_step_config(IdentitiesConfig, "identities", paths.read_params())
    path = paths.output(STEPS["identity_vectors"].output) / "identities.npy"
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": f"{path}: {exc}"})
    passed, metadata = validate(identity_tables(vectors, config))
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


def hsface_tables(
    manifest: pd.DataFrame, config: HSFaceConfig
) -> dict[str, tuple[pd.DataFrame, list]]:
    """Per-identity and per-shard tables of an HSFace manifest, with their expectations."""
    import great_expectations.expectations as gxe

    m = config.images_per_identity
    expected = sigma_counts(m, config.proportions)
    per_identity = manifest.groupby("identity").size().rename("images").to_frame()
    for i, sigma in enumerate(config.sigmas):
        hits = np.isclose(manifest["sigma"].to_numpy(np.float64), sigma, atol=1e-6)
        per_identity[f"sigma_{i}"] = pd.Series(hits).groupby(manifest["identity"].to_numpy()).sum()
    per_identity = per_identity.reset_index()
    shards = pd.DataFrame({"shard": sorted(manifest["shard"].unique().tolist())})
    return {
        "hsface_identities": (
            per_identity,
            [
                gxe.ExpectTableRowCountToEqual(value=config.num_identities),
                gxe.ExpectColumnValuesToBeBetween(column="images", min_value=m, max_value=m),
                *(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=f"sigma_{i}", min_value=int(c), max_value=int(c)
                    )
                    for i, c in enumerate(expected)
                ),
            ],
        ),
        "hsface_shards": (
            shards,
            [
                gxe.ExpectColumnDistinctValuesToEqualSet(
                    column="shard", value_set=list(range(config.num_shards))
                ),
            ],
        ),
    }


@dg.asset_check(asset=STEPS["hsface_merged"].asset, blocking=True)
def hsface_manifest_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """The merged HSFace manifest: the configured identities, exactly ``images_per_identity``
    images each, split over the sigmas in the configured proportions, from every shard."""
    config = load_step_config(HSFaceConfig, "hsface", paths.read_params())
    path = paths.output(STEPS["hsface_merged"].output) / "manifest.parquet"
    try:
        manifest = read_manifest(path)
    except (Vec2FaceError, OSError) as exc:
        return dg.AssetCheckResult(
            passed=False, metadata={"error": f"{exc.__class__.__name__}: {exc}"}
        )
    passed, metadata = validate(hsface_tables(manifest, config))
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


#: the report name of HSFace in dataset_reports (see assets_defs.evaluation.REPORTED)
HSFACE_REPORT = "hsface"


def noise_table(headline: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "intra_class_outlier_rate": headline.get("intra_class_outlier_rate"),
                "inter_class_noise_rate": headline.get("inter_class_noise_rate"),
            }
        ]
    )


def inter_noise_comparison(
    folder: Path, bounds: ExpectationsConfig, seed: int = 0
) -> RateComparison | None:
    """HSFace's inter-class noise rate against the reference dataset's, with the bootstrap
    margin over identities (None without a reference). Reads each report's
    ``identities.parquet`` (one ``same_person`` flag per identity).

    Raises:
        ValueError: a report without per-identity flags (naming the file).
    """
    if bounds.hsface_inter_noise_reference is None:
        return None
    flags = {}
    for name in (HSFACE_REPORT, bounds.hsface_inter_noise_reference):
        path = folder / name / "identities.parquet"
        try:
            flags[name] = pd.read_parquet(path, columns=["same_person"])["same_person"].to_numpy()
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(
                f"expectations.hsface_inter_noise_reference: {path}: no per-identity "
                f"same_person flags ({exc.__class__.__name__})"
            ) from None
    return compare_rates(
        flags[HSFACE_REPORT],
        flags[bounds.hsface_inter_noise_reference],
        level=bounds.hsface_inter_noise_level,
        seed=seed,
    )


def inter_noise_bound(bounds: ExpectationsConfig, comparison: RateComparison | None) -> float:
    """The inter-class noise rate HSFace may reach: the fixed ceiling, raised to the reference
    dataset's own rate plus the margin of the two estimates when a reference is configured
    (a judge that confuses real identities at rate r cannot be asked to see fewer confusions
    in synthetic ones, and two estimates differ by chance alone)."""
    if comparison is None:
        return bounds.hsface_max_inter_noise_rate
    return max(bounds.hsface_max_inter_noise_rate, comparison.reference + comparison.margin)


def noise_tables(
    headline: dict[str, Any], bounds: ExpectationsConfig, comparison: RateComparison | None = None
) -> dict[str, tuple[pd.DataFrame, list]]:
    """HSFace's judge rates with their expectations (see :func:`inter_noise_bound`)."""
    import great_expectations.expectations as gxe

    return {
        "hsface_noise": (
            noise_table(headline),
            [
                gxe.ExpectColumnValuesToBeBetween(
                    column="intra_class_outlier_rate",
                    min_value=0,
                    max_value=bounds.hsface_max_intra_outlier_rate,
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="inter_class_noise_rate",
                    min_value=0,
                    max_value=inter_noise_bound(bounds, comparison),
                ),
            ],
        )
    }


@dg.asset_check(asset=STEPS["dataset_reports"].asset, blocking=True)
def hsface_noise_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """HSFace as the judge sees it: intra-class outlier rate and inter-class noise rate under
    the ``expectations`` bounds (the inter-class one raised to the real data's own rate plus
    the bootstrap margin of the two estimates when ``hsface_inter_noise_reference`` names it).
    The metadata shows both rates, the margin, the bound and the verdict."""
    params = paths.read_params()
    bounds = load_step_config(ExpectationsConfig, "expectations", params)
    seed = int((params.get("dataset_reports") or {}).get("seed", 0))
    folder = paths.output(STEPS["dataset_reports"].output)
    try:
        headline = read_headline(folder, HSFACE_REPORT)
        comparison = inter_noise_comparison(folder, bounds, seed)
        tables = noise_tables(headline, bounds, comparison)
    except ValueError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
    passed, metadata = validate(tables)
    bound = inter_noise_bound(bounds, comparison)
    rate = float(headline["inter_class_noise_rate"])
    metadata["inter_class_noise_bound"] = bound
    metadata["hsface_inter_class_noise_rate"] = rate
    if comparison is not None:
        reference = bounds.hsface_inter_noise_reference
        metadata[f"{reference}_inter_class_noise_rate"] = comparison.reference
        metadata["inter_class_noise_margin"] = comparison.margin
        metadata["inter_class_noise_verdict"] = (
            f"{'pass' if rate <= bound else 'FAIL'}: HSFace {rate:.4f} vs {reference} "
            f"{comparison.reference:.4f} + margin {comparison.margin:.4f} (bootstrap over "
            f"identities, {comparison.level:.0%}); bound {bound:.4f}"
        )
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


def accuracy_tables(out: Path, models: Iterable[str]) -> dict[str, tuple[pd.DataFrame, list]]:
    """One row per (model, set) of the ``<model>.json`` files (a missing file: no rows), with
    the expectations: every model has the five sets and their average, each in [0, 1]."""
    import great_expectations.expectations as gxe

    models = list(models)
    rows = []
    for model in models:
        path = out / f"{model}.json"
        results = json.loads(path.read_text()) if path.is_file() else {}
        rows += [(model, name, f"{model}/{name}", r.get("accuracy")) for name, r in results.items()]
    table = pd.DataFrame(rows, columns=["model", "set", "key", "accuracy"])
    expected = [f"{m}/{s}" for m in models for s in (*BENCHMARK_SETS, "average")]
    return {
        "benchmark_accuracies": (
            table,
            [
                gxe.ExpectColumnDistinctValuesToEqualSet(column="key", value_set=expected),
                gxe.ExpectColumnValuesToNotBeNull(column="accuracy"),
                gxe.ExpectColumnValuesToBeBetween(column="accuracy", min_value=0, max_value=1),
            ],
        )
    }


@dg.asset_check(asset=STEPS["benchmark_accuracies"].asset, blocking=True)
def benchmark_accuracies_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """For every model: the five benchmark sets and their average, each accuracy in [0, 1]."""
    from assets_defs.evaluation import EVALUATED

    out = paths.output(STEPS["benchmark_accuracies"].output)
    passed, metadata = validate(accuracy_tables(out, EVALUATED))
    return dg.AssetCheckResult(passed=passed, metadata=metadata)
