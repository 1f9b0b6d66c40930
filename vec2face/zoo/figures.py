"""Held-out figures of zoo models, their tolerances, and the comparisons built on them.

Every figure is measured on data the model never saw: FR models on the five toy
verification sets (benchmark pools), the attribute estimator on the ``pca`` pool, the
generator on toy-LFW pairs (its inputs are the teacher's features of benchmark images;
the judge scores the results). Loading data and models happens in the callers; these
functions only measure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch import nn

__all__ = [
    "HEADLINE",
    "TOLERANCES",
    "attribute_figures",
    "trunk_figures",
    "fr_figures",
    "generator_figures",
    "GUARDS",
    "improves",
    "out_of_tolerance",
    "regressions",
]

#: allowed absolute difference of a re-measured figure, per kind and figure (``*``: any
#: other figure of that kind). Accuracies are on 6,000-pair sets: one pair is 0.017
#: points; bf16 kernels differ between CPUs (AMX or not) by a few pairs. The generator's
#: sharpness ratio is far below 1 while it draws blurred heads (0.006-0.014): its float16
#: export moves it by 2e-5, so 0.002 (and 2.0 for the generated images' Laplacian
#: variance, 0.002 of the real images') keeps a doubling from passing as noise.
TOLERANCES: dict[str, dict[str, float]] = {
    "fr": {"*": 0.004},
    "attributes": {"yaw_mae": 0.15, "pitch_mae": 0.15, "roll_mae": 0.15, "age_mae": 0.15,
                   "quality_mae": 0.05, "quality_spearman": 0.01},
    "trunk": {"identity_r2": 0.005, "nuisance_r2": 0.005, "yaw_mae": 0.15, "age_mae": 0.15,
              "prefers_sharp": 0.01},
    "generator": {"judge_cosine_recon": 0.01, "teacher_cosine_recon": 0.01,
                  "identity_preservation": 0.02, "judge_accuracy_real": 0.02,
                  "judge_accuracy_generated": 0.02, "face_mae": 0.5,
                  "sharpness_real": 5.0, "sharpness_generated": 2.0, "sharpness_ratio": 0.002},
}

#: the figure that decides whether a rebuilt model replaces the shipped one: (name, +1 when
#: higher is better, -1 when lower is)
HEADLINE: dict[str, tuple[str, int]] = {
    "fr": ("average", +1),
    "attributes": ("age_mae", -1),
    "trunk": ("identity_r2", +1),
    "generator": ("sharpness_ratio", +1),
}


#: figures a rebuilt model must not lose beyond their tolerance while its headline improves
#: (same sign convention): a generator that draws sharper images of the wrong person is no
#: better
GUARDS: dict[str, tuple[tuple[str, int], ...]] = {
    "fr": (),
    "attributes": (("yaw_mae", -1),),
    "trunk": (),
    "generator": (("judge_cosine_recon", +1), ("identity_preservation", +1)),
}


def tolerance(kind: str, figure: str) -> float:
    """The allowed absolute difference of ``figure`` for a model of ``kind``."""
    table = TOLERANCES[kind]
    return table.get(figure, table.get("*", 0.0))


def out_of_tolerance(
    kind: str, recorded: Mapping[str, float], measured: Mapping[str, float]
) -> dict[str, tuple[float, float, float]]:
    """Figures of ``recorded`` that ``measured`` misses or moves beyond their tolerance.

    Returns:
        ``{figure: (recorded, measured, tolerance)}`` (measured NaN when missing).
    """
    moved = {}
    for name, value in recorded.items():
        got = float(measured.get(name, float("nan")))
        tol = tolerance(kind, name)
        if not np.isfinite(got) or abs(got - float(value)) > tol:
            moved[name] = (float(value), got, tol)
    return moved


def regressions(
    kind: str, new: Mapping[str, float], old: Mapping[str, float]
) -> dict[str, tuple[float, float, float]]:
    """Guard figures (:data:`GUARDS`) that ``new`` loses against ``old`` beyond their
    tolerance: ``{figure: (old, new, tolerance)}``."""
    lost = {}
    for name, sign in GUARDS[kind]:
        if name in old and name in new:
            tol = tolerance(kind, name)
            if sign * (float(new[name]) - float(old[name])) < -tol:
                lost[name] = (float(old[name]), float(new[name]), tol)
    return lost


def improves(kind: str, new: Mapping[str, float], old: Mapping[str, float]) -> bool:
    """True when ``new`` beats ``old`` on the kind's headline figure by more than its
    tolerance and loses no guard figure beyond its tolerance (a rebuilt zoo model replaces
    the shipped one only then)."""
    name, sign = HEADLINE[kind]
    better = sign * (float(new[name]) - float(old[name])) > tolerance(kind, name)
    return better and not regressions(kind, new, old)


def fr_figures(model: nn.Module, bins_dir: str | Path) -> dict[str, float]:
    """Verification accuracy (insightface protocol, flip-summed, fp32) on every ``.bin`` set
    of ``bins_dir`` and their ``average``."""
    from vec2face.fr.evaluate import evaluate_bins

    results = evaluate_bins(model, bins_dir, batch_size=128)
    return {name: round(float(r["accuracy"]), 6) for name, r in results.items()}


def attribute_figures(model: nn.Module, pool_dir: str | Path) -> dict[str, float]:
    """Mean absolute errors (yaw, pitch, roll in degrees, age in years, quality) and the
    quality rank correlation on a labelled toy pool of identities never trained on."""
    from vec2face.attributes.train import evaluate_estimator, load_labelled_toyfaces

    metrics = evaluate_estimator(model, load_labelled_toyfaces(pool_dir))
    return {k: round(float(v), 6) for k, v in metrics.items() if k != "n"}


def trunk_figures(model: nn.Module, pool_dir: str | Path) -> dict[str, float]:
    """Variance of the identity and nuisance parameters explained (R^2), yaw and age errors,
    and the share of images for which the trunk's distance calls a 1-pixel shift closer
    than a blur of equal MSE, on a toy pool of identities never trained on."""
    from vec2face.perceptual.train import trunk_figures as measure

    return measure(model, pool_dir)


def generator_figures(
    generator: nn.Module,
    teacher: nn.Module,
    judge: nn.Module,
    bin_file: str | Path,
    pairs: int = 200,
    seed: int = 0,
) -> tuple[dict[str, float], np.ndarray]:
    """The generator's reconstruction figures on ``pairs`` pairs of a ``.bin``, spread over
    the file (both kinds from every fold: :func:`vec2face.data.verification_bin.read_pair_sample`).

    Returns:
        (figures of :func:`vec2face.generator.quality.measure_generator_quality`, the
        generated uint8 images).
    """
    from vec2face.data.images import decode_image
    from vec2face.data.verification_bin import read_pair_sample
    from vec2face.generator.quality import measure_generator_quality

    blobs, issame = read_pair_sample(bin_file, pairs)
    images = np.stack([decode_image(b) for b in blobs])
    figures, generated = measure_generator_quality(
        generator, teacher, judge, images, issame, seed=seed
    )
    values = {k: round(float(v), 6) for k, v in figures.as_dict().items() if k != "pairs"}
    return values, generated
