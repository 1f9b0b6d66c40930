"""Asset checks: Great Expectations suites run on each output as it is materialized.

Each check turns an output into small tables (one row per image, per identity, per
set), validates them with a GX expectation suite, and reports every expectation's
outcome (verdict, observed value and bound) as metadata. The checks are blocking: a
failure stops downstream assets.
"""

import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import torch
from pydantic import Field

from assets_defs.generation import GENERATOR_FILE, GaussianAblationConfig, shard_keys
from assets_defs.resources import PipelinePaths
from assets_defs.steps import STEPS
from assets_defs.toy_world import pool_config
from vec2face.attributes.estimators import load_toy_estimator
from vec2face.attributes.train import MODEL_FILE
from vec2face.config import StepConfig, load_step_config
from vec2face.data import decode_image, open_dataset, read_bin, read_manifest
from vec2face.data.subset import MANIFEST_NAME, SubsetConfig
from vec2face.errors import Vec2FaceError
from vec2face.fr.evaluate import BENCHMARK_SETS
from vec2face.fr.extract import load_trained_backbone
from vec2face.hsface.identities import IdentitiesConfig, max_pairwise_cosine
from vec2face.hsface.variation import sigma_counts
from vec2face.hsface.writer import HSFaceConfig, shard_name
from vec2face.models import load_generator_checkpoint
from vec2face.reports.dataset_report import read_headline
from vec2face.reports.metrics import RateComparison, compare_rates
from vec2face.toyfaces.benchmarks import BenchmarksConfig
from vec2face.toyfaces.world import ToyfacesConfig

#: the image size every FR dataset of the pipeline holds (insightface's 112x112)
IMAGE_SIZE = 112
#: images decoded by the subset check; larger subsets are checked on a seeded sample
MAX_DECODED = 50_000


#: values a metadata line shows of a list or set before it says how many there are
SHOWN_VALUES = 5


def brief(value: Any) -> str:
    """A figure, list or set as a short metadata text (floats to 4 significant digits)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if isinstance(value, (set, frozenset)):
            try:
                items.sort()
            except TypeError:  # values of mixed types
                items.sort(key=str)
        shown = ", ".join(brief(v) for v in items[:SHOWN_VALUES])
        more = f", ... ({len(items)} values)" if len(items) > SHOWN_VALUES else ""
        open_, close = ("{", "}") if isinstance(value, (set, frozenset)) else ("[", "]")
        return f"{open_}{shown}{more}{close}"
    return "none" if value is None else str(value)


def bound_text(kind: str, kwargs: dict[str, Any]) -> str:
    """What an expectation asks for, read from its kwargs (``>= 0.9 and <= 1``, ``== 112``,
    ``in {True}``)."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_low, strict_high = kwargs.get("strict_min", False), kwargs.get("strict_max", False)
    if low is not None and low == high and not (strict_low or strict_high):
        return f"== {brief(low)}"
    parts = []
    if low is not None:
        parts.append(f"{'>' if strict_low else '>='} {brief(low)}")
    if high is not None:
        parts.append(f"{'<' if strict_high else '<='} {brief(high)}")
    if parts:
        return " and ".join(parts)
    if "value" in kwargs:
        return f"== {brief(kwargs['value'])}"
    if "value_set" in kwargs:
        # a column's distinct values are (or include) the set, or each value lies in it
        relation = {"equal_set": "==", "contain_set": "contains"}.get(
            kind.rsplit("_to_", 1)[-1], "in"
        )
        return f"{relation} {brief(set(kwargs['value_set']))}"
    if "column_A" in kwargs:
        return f"{kwargs['column_A']} == {kwargs['column_B']}"
    if kind.endswith("not_be_null"):
        return "not null"
    return kind


def _examples(values: list | None) -> str:
    return f" {brief(values)}" if values else ""


def observed_text(result: dict[str, Any], column: pd.Series | None = None) -> str:
    """What an expectation saw: its observed figure; for a per-row expectation the figure of
    a one-row table (``column``), else how many rows broke it and a few of their values; for
    a set expectation what the column lacks and what it has besides."""
    if "element_count" in result:
        if column is not None and len(column) == 1:  # a summary table: show its figure
            return f"observed {brief(column.iloc[0])}"
        count = f"{result.get('unexpected_count', 0)} of {result['element_count']} rows unexpected"
        return count + _examples(result.get("partial_unexpected_list"))
    if "missing_count" in result:  # GX observes no value for a set expectation
        missing = _examples(result.get("partial_missing_list"))
        parts = [f"{result['missing_count']} missing{missing}"]
        if "unexpected_count" in result:
            extra = _examples(result.get("partial_unexpected_list"))
            parts.append(f"{result['unexpected_count']} extra{extra}")
        return ", ".join(parts)
    return f"observed {brief(result.get('observed_value'))}"


def validate(tables: dict[str, tuple[pd.DataFrame, Iterable[Any]]]) -> tuple[bool, dict[str, Any]]:
    """Validate each ``name -> (frame, expectations)`` with GX; (all passed, metadata).

    Each expectation's metadata line shows its verdict, what it observed and its bound, e.g.
    ``ok (observed 0.9474, bound >= 0.9 and <= 1)`` or ``FAILED (1 of 20 rows unexpected
    [111], bound == 112)``."""
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
            column = frame.get(cfg.kwargs.get("column")) if "column" in cfg.kwargs else None
            metadata[label] = (
                f"{'ok' if r.success else 'FAILED'} ({observed_text(r.result, column)}, "
                f"bound {bound_text(cfg.type, cfg.kwargs)})"
            )
            if not r.success:
                failed.append(label)
    metadata["failed_expectations"] = ", ".join(failed) or "none"
    return passed, metadata


def seeded_sample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of ``limit`` of ``n`` items drawn with ``seed`` (all when n <= limit)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def image_size(data: bytes, where: str) -> tuple[int, int, bool]:
    """(height, width, readable) of encoded image bytes; (0, 0, False) when they do not decode."""
    try:
        h, w = decode_image(data, where).shape[:2]
    except Vec2FaceError:
        return 0, 0, False
    return h, w, True


def lmdb_image_rows(ds, labels: np.ndarray, picked: np.ndarray) -> pd.DataFrame:
    """One row per picked record of an open dataset: record, label, height, width, readable."""
    rows = [
        (int(pos), int(labels[pos]), *image_size(ds.read_raw(int(pos))[0], ds.location(int(pos))))
        for pos in picked
    ]
    return pd.DataFrame(rows, columns=["record", "label", "height", "width", "readable"])


def image_expectations() -> list:
    """Every image of a table readable and ``IMAGE_SIZE`` square."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
        *(
            gxe.ExpectColumnValuesToBeBetween(column=c, min_value=IMAGE_SIZE, max_value=IMAGE_SIZE)
            for c in ("height", "width")
        ),
    ]


def subset_tables(out: Path, config: SubsetConfig) -> dict[str, tuple[pd.DataFrame, list]]:
    """Per-image and per-identity tables of a written subset, with their expectations."""
    import great_expectations.expectations as gxe

    manifest = read_manifest(out / MANIFEST_NAME)
    with open_dataset(out / "train.lmdb") as ds:
        labels = ds.labels.astype(np.int64)
        images = lmdb_image_rows(ds, labels, seeded_sample(len(ds), MAX_DECODED))
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
                *image_expectations(),
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
    hsface_inter_noise_allowance: float = Field(
        0.0,
        ge=0,
        le=1,
        description="how much more inter-class noise than the reference's HSFace may carry "
        "(absolute): the check then asks whether HSFace exceeds reference + allowance by more "
        "than the margin (0: no more than the real data)",
    )
    fr_min_heldout_accuracy: float = Field(
        0.9,
        ge=0,
        le=1,
        description="least held-out average verification accuracy of the teacher and the "
        "judge: the zoo manifest's figure, or the training's last validation (the toy zoo's "
        "teacher and judge reach about 0.95 and 0.94)",
    )
    attributes_max_yaw_mae: float = Field(
        5.0,
        gt=0,
        description="largest held-out yaw error (degrees, mean absolute) of the attribute "
        "estimator (the toy estimator reaches about 0.8)",
    )
    attributes_max_age_mae: float = Field(
        8.0,
        gt=0,
        description="largest held-out age error (years, mean absolute) of the attribute "
        "estimator (the toy estimator reaches about 4.6)",
    )
    generator_min_pixel_std: float = Field(
        0.02,
        ge=0,
        description="least per-pixel standard deviation (averaged over pixels, images in "
        "[-1, 1]) across the generator's images of a few random unit vectors: a generator "
        "that draws the same image whatever its input falls below it",
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
    dataset's own rate plus the allowance and the margin of the two estimates when a
    reference is configured (a judge that confuses real identities at rate r cannot be asked
    to see fewer confusions in synthetic ones, and two estimates differ by chance alone)."""
    if comparison is None:
        return bounds.hsface_max_inter_noise_rate
    allowed = comparison.reference + bounds.hsface_inter_noise_allowance + comparison.margin
    return max(bounds.hsface_max_inter_noise_rate, allowed)


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
        metadata["inter_class_noise_allowance"] = bounds.hsface_inter_noise_allowance
        metadata["inter_class_noise_verdict"] = (
            f"{'pass' if rate <= bound else 'FAIL'}: HSFace {rate:.4f} vs {reference} "
            f"{comparison.reference:.4f} + allowance {bounds.hsface_inter_noise_allowance:.4f} "
            f"+ margin {comparison.margin:.4f} (bootstrap over identities, "
            f"{comparison.level:.0%}); bound {bound:.4f}"
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


# ---------------------------------------------------------------------------------------
# world pools, models, HSFace shards, the gaussian ablation

Tables = dict[str, tuple[pd.DataFrame, list]]

#: images decoded by the pool and LMDB checks: a seeded sample (the writer is checked, and a
#: broken writer breaks more than a few images)
SAMPLED_IMAGES = 200
#: seeded inputs of the model checks' forward passes
PROBE_IMAGES = 4
PROBE_VECTORS = 8
#: the embedding size of every FR model of the pipeline (insightface's 512)
EMBEDDING_SIZE = 512
#: written beside a model exported from the zoo (its held-out ``figures``)
ZOO_MANIFEST = "zoo_manifest.json"
#: written beside a model trained in the chain (its validation figures)
TRAINING_METRICS = "metrics.json"
#: the file a toy world pool lists its images in
POOL_MANIFEST = "manifest.parquet"


def suite_result(make_tables: Callable[[], Tables]) -> dg.AssetCheckResult:
    """Validate the tables ``make_tables`` builds; an output that cannot be read fails the
    check with the error (which names the file) as its metadata."""
    try:
        tables = make_tables()
    except (Vec2FaceError, OSError, KeyError, ValueError) as exc:
        return dg.AssetCheckResult(
            passed=False, metadata={"error": f"{exc.__class__.__name__}: {exc}"}
        )
    passed, metadata = validate(tables)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


def pool_tables(folder: Path, config: ToyfacesConfig, sample: int = SAMPLED_IMAGES) -> Tables:
    """A rendered pool's manifest (identities x images rows, every identity) and a seeded
    sample of its image files (readable, 112x112), with their expectations."""
    import great_expectations.expectations as gxe

    manifest = read_manifest(folder / POOL_MANIFEST)
    rows = []
    for rel in manifest["path"].to_numpy()[seeded_sample(len(manifest), sample)]:
        path = folder / rel
        data = path.read_bytes() if path.is_file() else b""  # a missing file: unreadable
        rows.append((str(rel), *image_size(data, str(path))))
    n = config.identities
    name = f"{config.pool}_pool"
    return {
        f"{name}_manifest": (
            manifest,
            [
                gxe.ExpectTableRowCountToEqual(value=n * config.images),
                gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column="identity", min_value=n, max_value=n
                ),
            ],
        ),
        f"{name}_images": (
            pd.DataFrame(rows, columns=["path", "height", "width", "readable"]),
            image_expectations(),
        ),
    }


def pool_check(pool: str) -> dg.AssetChecksDefinition:
    """The check of toy world pool ``pool`` against its ``world`` section."""
    step = STEPS[f"{pool}_pool"]

    @dg.asset_check(
        asset=step.asset,
        name=f"{step.asset}_expectations",
        blocking=True,
        description=f"The '{pool}' pool: identities x images manifest rows from the params, "
        "every identity present, a seeded sample of its images readable and 112x112.",
    )
    def _pool_check(paths: PipelinePaths) -> dg.AssetCheckResult:
        config = pool_config(paths.read_params(), pool)
        return suite_result(lambda: pool_tables(paths.output(step.output), config))

    return _pool_check


def embedding_table(folders: Mapping[str, Path], seed: int = 0) -> pd.DataFrame:
    """One row per FR model folder (``backbone.pt`` + ``backbone.json``): the dimension of its
    embeddings of seeded random images, whether all are finite, and the smallest norm.

    Raises:
        ConfigError: a model that does not load (naming its file).
    """
    images = np.random.default_rng(seed).uniform(-1, 1, (PROBE_IMAGES, 3, IMAGE_SIZE, IMAGE_SIZE))
    x = torch.from_numpy(images.astype(np.float32))
    rows = []
    for name, folder in folders.items():
        with torch.inference_mode():
            embeddings = load_trained_backbone(folder)(x).float()
        finite = bool(torch.isfinite(embeddings).all())
        norms = torch.linalg.vector_norm(torch.nan_to_num(embeddings), dim=-1)
        rows.append((name, int(embeddings.shape[-1]), finite, float(norms.min())))
    return pd.DataFrame(rows, columns=["model", "dim", "finite", "min_norm"])


def embedding_expectations() -> list:
    """512-d finite embeddings that can be L2-normalised (no zero vector)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="dim", min_value=EMBEDDING_SIZE, max_value=EMBEDDING_SIZE
        ),
        gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
        gxe.ExpectColumnMinToBeBetween(column="min_norm", min_value=0, strict_min=True),
    ]


def recorded_figures(folder: Path, training_key: str) -> tuple[str, dict[str, Any]]:
    """Held-out figures recorded beside a model, and the file they come from: the zoo
    manifest's ``figures`` (a model exported from the zoo), else ``training_key`` of the
    training's ``metrics.json`` (a model trained in the chain); ("none", {}) without either."""
    for name, key in ((ZOO_MANIFEST, "figures"), (TRAINING_METRICS, training_key)):
        path = folder / name
        if path.is_file():
            return name, dict(json.loads(path.read_text()).get(key) or {})
    return "none", {}


def fr_accuracies(folder: Path) -> tuple[str, dict[str, float]]:
    """An FR model's held-out accuracies ``{set: accuracy}`` (with ``average``) and their
    file: the zoo manifest's figures, or the last validation a training recorded."""
    source, figures = recorded_figures(folder, "metrics")
    if source == TRAINING_METRICS:  # {"val/<set>/accuracy": ...} among the training stats
        figures = {
            k.split("/")[1]: v
            for k, v in figures.items()
            if k.startswith("val/") and k.endswith("/accuracy")
        }
    return source, figures


def heldout_table(source: str, figures: Mapping[str, Any], names: Iterable[str]) -> pd.DataFrame:
    """One row: where the figures come from and each of ``names`` (NaN when not recorded)."""
    return pd.DataFrame([{"source": source, **{n: figures.get(n, np.nan) for n in names}}])


def recorded_source_expectation():
    """Held-out figures were recorded beside the model (a :func:`heldout_table` whose
    source is a zoo manifest or a training's metrics)."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(
        column="source", value_set=[ZOO_MANIFEST, TRAINING_METRICS]
    )


def fr_tables(name: str, folder: Path, bounds: ExpectationsConfig) -> Tables:
    """An off-the-shelf FR model (teacher or judge): its embeddings, and its recorded held-out
    average accuracy at least ``fr_min_heldout_accuracy`` (every recorded set in [0, 1])."""
    import great_expectations.expectations as gxe

    source, accuracies = fr_accuracies(folder)
    sets = pd.DataFrame(list(accuracies.items()), columns=["set", "accuracy"])
    return {
        f"{name}_embeddings": (embedding_table({name: folder}), embedding_expectations()),
        f"{name}_heldout": (
            heldout_table(source, accuracies, ["average"]),
            [
                recorded_source_expectation(),
                gxe.ExpectColumnMinToBeBetween(
                    column="average", min_value=bounds.fr_min_heldout_accuracy, max_value=1
                ),
            ],
        ),
        f"{name}_heldout_sets": (
            sets,
            [gxe.ExpectColumnValuesToBeBetween(column="accuracy", min_value=0, max_value=1)],
        ),
    }


def fr_check(asset: str) -> dg.AssetChecksDefinition:
    """The check of the off-the-shelf FR model ``asset`` (fr_teacher or fr_judge)."""
    step = STEPS[asset]

    @dg.asset_check(
        asset=step.asset,
        name=f"{step.asset}_expectations",
        blocking=True,
        description="backbone.pt + backbone.json load and embed seeded images as finite, "
        "non-zero 512-d vectors; the held-out average accuracy recorded beside them (zoo "
        "manifest, or the training's last validation) is at least "
        "expectations.fr_min_heldout_accuracy.",
    )
    def _fr_check(paths: PipelinePaths) -> dg.AssetCheckResult:
        bounds = load_step_config(ExpectationsConfig, "expectations", paths.read_params())
        return suite_result(lambda: fr_tables(step.asset, paths.output(step.output), bounds))

    return _fr_check


#: the attribute estimator's held-out figures with a bound: (figure, ExpectationsConfig field)
ATTRIBUTE_BOUNDS = (("yaw_mae", "attributes_max_yaw_mae"), ("age_mae", "attributes_max_age_mae"))


def attribute_tables(folder: Path, bounds: ExpectationsConfig, seed: int = 0) -> Tables:
    """The attribute estimator: ``model.pt`` loads and gives finite yaw and age estimates of
    seeded images; its recorded held-out yaw and age errors are within the bounds."""
    import great_expectations.expectations as gxe

    model = load_toy_estimator(folder / MODEL_FILE)
    images = np.random.default_rng(seed).integers(
        0, 256, (PROBE_IMAGES, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8
    )
    estimates = pd.DataFrame(
        [(k, bool(np.isfinite(v).all())) for k, v in model.predict(images).items()],
        columns=["attribute", "finite"],
    )
    source, figures = recorded_figures(folder, "heldout")
    return {
        "attribute_estimates": (
            estimates,
            [
                gxe.ExpectColumnDistinctValuesToContainSet(
                    column="attribute", value_set=["yaw", "age"]
                ),
                gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
            ],
        ),
        "attribute_heldout": (
            heldout_table(source, figures, [f for f, _ in ATTRIBUTE_BOUNDS]),
            [
                recorded_source_expectation(),
                *(
                    gxe.ExpectColumnMaxToBeBetween(
                        column=figure, min_value=0, max_value=getattr(bounds, field)
                    )
                    for figure, field in ATTRIBUTE_BOUNDS
                ),
            ],
        ),
    }


@dg.asset_check(asset=STEPS["attribute_estimator"].asset, blocking=True)
def attribute_estimator_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """model.pt loads and estimates seeded images finitely; the held-out yaw and age errors
    recorded beside it (zoo manifest, or the training's metrics.json) are within
    expectations.attributes_max_yaw_mae and attributes_max_age_mae."""
    bounds = load_step_config(ExpectationsConfig, "expectations", paths.read_params())
    folder = paths.output(STEPS["attribute_estimator"].output)
    return suite_result(lambda: attribute_tables(folder, bounds))


def generator_table(path: Path, n: int = PROBE_VECTORS, seed: int = 0) -> pd.DataFrame:
    """One row on the generator's images of ``n`` seeded random unit vectors: all finite,
    lowest and highest value, and the per-pixel standard deviation across the images
    (averaged over pixels; 0 when every input gives the same image)."""
    generator, _ = load_generator_checkpoint(path)
    vectors = np.random.default_rng(seed).standard_normal((n, generator.arch.rep_dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    images = generator.generate(vectors.astype(np.float32), seed=seed).float().cpu().numpy()
    finite = np.isfinite(images)
    images = np.where(finite, images, 0.0)
    return pd.DataFrame(
        [
            {
                "finite": bool(finite.all()),
                "lowest": float(images.min()),
                "highest": float(images.max()),
                "pixel_std": float(images.std(axis=0).mean()),
            }
        ]
    )


def generator_tables(path: Path, bounds: ExpectationsConfig) -> Tables:
    """The generator's images: finite, in [-1, 1], differing across inputs by at least
    ``generator_min_pixel_std``."""
    import great_expectations.expectations as gxe

    return {
        "generator_images": (
            generator_table(path),
            [
                gxe.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
                gxe.ExpectColumnMinToBeBetween(column="lowest", min_value=-1),
                gxe.ExpectColumnMaxToBeBetween(column="highest", max_value=1),
                gxe.ExpectColumnMinToBeBetween(
                    column="pixel_std", min_value=bounds.generator_min_pixel_std
                ),
            ],
        )
    }


@dg.asset_check(asset=STEPS["fmae_generator"].asset, blocking=True)
def fmae_generator_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """generator.pt loads; its images of 8 seeded random unit vectors are finite, in [-1, 1]
    and differ across the inputs (per-pixel std at least
    expectations.generator_min_pixel_std: a collapsed generator fails)."""
    bounds = load_step_config(ExpectationsConfig, "expectations", paths.read_params())
    path = paths.output(STEPS["fmae_generator"].output) / GENERATOR_FILE
    return suite_result(lambda: generator_tables(path, bounds))


def fr_lmdb_tables(
    name: str, path: Path, identities: range, per_identity: int, sample: int = SAMPLED_IMAGES
) -> Tables:
    """A generated FR-layout LMDB: ``len(identities) x per_identity`` records, the labels of
    exactly ``identities`` with ``per_identity`` images each, and a seeded sample of its
    images readable and 112x112."""
    import great_expectations.expectations as gxe

    with open_dataset(path) as ds:
        labels = ds.labels.astype(np.int64)
        images = lmdb_image_rows(ds, labels, seeded_sample(len(ds), sample))
    counts = pd.Series(labels).value_counts().rename_axis("label").reset_index(name="images")
    records = len(identities) * per_identity
    return {
        f"{name}_records": (
            pd.DataFrame([{"records": len(labels)}]),
            [
                gxe.ExpectColumnMaxToBeBetween(
                    column="records", min_value=records, max_value=records
                )
            ],
        ),
        f"{name}_identities": (
            counts,
            [
                gxe.ExpectColumnDistinctValuesToEqualSet(
                    column="label", value_set=list(identities)
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="images", min_value=per_identity, max_value=per_identity
                ),
            ],
        ),
        f"{name}_images": (images, image_expectations()),
    }


def hsface_shard_check(params: dict[str, Any]) -> dg.AssetChecksDefinition:
    """The per-shard check of ``hsface_dataset``, partitioned like it (the params' shards)."""
    step = STEPS["hsface_dataset"]

    def hsface_shard_expectations(
        context: dg.AssetCheckExecutionContext, paths: PipelinePaths
    ) -> dg.AssetCheckResult:
        """The shard's LMDB: its identity range x hsface.images_per_identity records, each of
        its identities with images_per_identity images, a seeded sample of images readable
        and 112x112."""
        config = load_step_config(HSFaceConfig, "hsface", paths.read_params())
        shard = int(context.partition_key)
        lmdb = paths.output(step.output) / "shards" / shard_name(shard) / "train.lmdb"
        return suite_result(
            lambda: fr_lmdb_tables(
                "hsface_shard", lmdb, range(*config.shard_range(shard)), config.images_per_identity
            )
        )

    # A check partitioned like its asset runs once per shard run, on that shard; Dagster
    # 1.13 (pinned) flags the argument as a preview on every definitions load.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return dg.asset_check(
            asset=step.asset,
            name="hsface_shard_expectations",
            blocking=True,
            partitions_def=dg.StaticPartitionsDefinition(shard_keys(params)),
        )(hsface_shard_expectations)


@dg.asset_check(asset=STEPS["gaussian_ablation"].asset, blocking=True)
def gaussian_ablation_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """The merged ablation dataset: gaussian_ablation.n (else identities.n) identities x
    hsface.images_per_identity records, images_per_identity each, a seeded sample of images
    readable and 112x112."""
    params = paths.read_params()
    n = load_step_config(GaussianAblationConfig, "gaussian_ablation", params).n
    if n is None:
        n = load_step_config(IdentitiesConfig, "identities", params).n
    per_identity = load_step_config(HSFaceConfig, "hsface", params).images_per_identity
    lmdb = paths.output(STEPS["gaussian_ablation"].output) / "merged" / "train.lmdb"
    return suite_result(lambda: fr_lmdb_tables("ablation", lmdb, range(n), per_identity))


@dg.asset_check(asset=STEPS["fr_model"].asset, blocking=True)
def fr_model_expectations(paths: PipelinePaths) -> dg.AssetCheckResult:
    """Both FR models (webface/ and hsface/) load and embed seeded images as finite, non-zero
    512-d vectors (their accuracies are benchmark_accuracies')."""
    from assets_defs.models import FR_MODEL_DATA

    out = paths.output(STEPS["fr_model"].output)
    return suite_result(
        lambda: {
            "fr_model_embeddings": (
                embedding_table({name: out / name for name in FR_MODEL_DATA}),
                embedding_expectations(),
            )
        }
    )
