"""Comparison figures of dataset reports (Vec2Face Figures 4-6), written atomically as PNG.

Every function takes a mapping ``dataset name -> values`` and draws all datasets on the
same axes, one colour per dataset, so several datasets (e.g. HSFace10K vs WebFace4M)
compare at a glance. Distributions are drawn as density step lines on a fixed grid:
datasets of very different sizes stay comparable and overlapping curves stay visible.

Figures are built on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no
pyplot, so no global figure state and no GUI backend) and saved through
:func:`vec2face.utils.io.atomic_path`. Non-finite values (e.g. a failed pose estimate)
are dropped and their count shown in the legend; a dataset with no finite value raises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vec2face.reports.metrics import (
    GenuineImpostor,
    IdentityLeakage,
    InterClassNoise,
    IntraClassNoise,
    equal_error_rate,
)
from vec2face.utils.io import atomic_path

__all__ = [
    "plot_age",
    "plot_distributions",
    "plot_genuine_impostor",
    "plot_inter_class_similarity",
    "plot_intra_class_similarity",
    "plot_leakage_similarity",
    "plot_pose",
]

_DPI = 120
_COSINE_RANGE = (-1.0, 1.0)


class _CosineFigure(NamedTuple):
    """The words of one cosine-distribution figure."""

    title: str
    xlabel: str
    threshold_name: str  # the dashed line's legend: "<threshold_name> threshold = <value>"
    share_label: str  # what the legend calls the share beyond the threshold
    above_threshold: bool = True  # the share counts values > threshold (else <)


_COSINE_FIGURES = {
    "intra": _CosineFigure(
        "Intra-class similarity: image to identity center",
        "cosine similarity to identity center",
        "outlier",
        "outliers",
        above_threshold=False,
    ),
    "inter": _CosineFigure(
        "Inter-class similarity: nearest other identity center",
        "max cosine similarity to another identity center",
        "same-person",
        "same person",
    ),
    "leakage": _CosineFigure(
        "Identity leakage: nearest reference identity",
        "max cosine similarity to a reference identity center",
        "leakage",
        "leaked",
    ),
}


def _new_figure(ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(6.4 * ncols, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig: Figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


def _finite(values: Any, name: str) -> tuple[np.ndarray, int]:
    """Flattened float64 finite values and how many non-finite ones were dropped."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    keep = np.isfinite(arr)
    if not keep.any():
        raise ValueError(f"dataset {name!r}: no finite value to plot")
    return arr[keep], int(arr.size - keep.sum())


def _check_data(data: Mapping[str, Any]) -> None:
    if not data:
        raise ValueError("no dataset to plot: give at least one name -> values entry")


def _density(ax: Axes, values: np.ndarray, bins: np.ndarray, **style: Any) -> None:
    hist, edges = np.histogram(values, bins=bins, density=True)
    ax.stairs(hist, edges, linewidth=1.6, **style)


def _grid(
    values: Sequence[np.ndarray], bins: int, value_range: tuple[float, float] | None
) -> np.ndarray:
    if value_range is None:
        lo = min(float(v.min()) for v in values)
        hi = max(float(v.max()) for v in values)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        value_range = (lo, hi)
    return np.linspace(value_range[0], value_range[1], bins + 1)


def _threshold_line(ax: Axes, value: float, label: str) -> None:
    ax.axvline(value, color="black", linestyle="--", linewidth=1.2, label=label)


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str = "density") -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def plot_distributions(
    data: Mapping[str, Any],
    path: str | os.PathLike,
    title: str,
    xlabel: str,
    bins: int = 100,
    value_range: tuple[float, float] | None = None,
    threshold: float | None = None,
    threshold_label: str | None = None,
    above_threshold: bool = True,
    share_label: str = "share",
) -> None:
    """Density step lines of one quantity for several datasets, optionally with a threshold.

    Args:
        data: dataset name -> (n,) values.
        path: PNG file to write.
        title: figure title.
        xlabel: x-axis label.
        bins: grid bins.
        value_range: grid range; default spans all datasets' values.
        threshold: draw a dashed vertical line here and give each dataset's share of
            values beyond it in the legend.
        threshold_label: legend text of the line (default ``"threshold = <value>"``).
        above_threshold: the share counts values > threshold (else values < threshold).
        share_label: what the legend calls that share (e.g. ``"outliers"``).

    Raises:
        ValueError: no dataset, or a dataset without a finite value.
    """
    _check_data(data)
    clean = {name: _finite(values, name) for name, values in data.items()}
    grid = _grid([v for v, _ in clean.values()], bins, value_range)
    fig, (ax,) = _new_figure()
    for name, (values, dropped) in clean.items():
        label = f"{name} (n={values.size:,}"
        if threshold is not None:
            share = np.mean(values > threshold) if above_threshold else np.mean(values < threshold)
            label += (
                f", {share_label} ({'>' if above_threshold else '<'} {threshold:g}): {share:.2%}"
            )
        if dropped:
            label += f", {dropped:,} non-finite dropped"
        _density(ax, values, grid, label=label + ")")
    if threshold is not None:
        _threshold_line(ax, threshold, threshold_label or f"threshold = {threshold:g}")
    _finish(ax, title, xlabel)
    _save(fig, path)


def plot_intra_class_similarity(
    data: Mapping[str, IntraClassNoise | np.ndarray],
    path: str | os.PathLike,
    threshold: float = 0.3,
    bins: int = 100,
) -> None:
    """Figure 4 style: each image's cosine to its identity center, per dataset.

    Args:
        data: dataset name -> :class:`IntraClassNoise` (its included cosines are drawn)
            or (n,) cosines.
        path: PNG file to write.
        threshold: outlier threshold, drawn and used for the legend's outlier share.
        bins: bins over [-1, 1].
    """
    values = {
        k: v.included_cosines if isinstance(v, IntraClassNoise) else v for k, v in data.items()
    }
    _plot_cosines(values, path, threshold, bins, _COSINE_FIGURES["intra"])


def plot_inter_class_similarity(
    data: Mapping[str, InterClassNoise | np.ndarray],
    path: str | os.PathLike,
    threshold: float = 0.7,
    bins: int = 100,
) -> None:
    """Figure 5 style: each identity center's largest cosine to another center, per dataset.

    Args:
        data: dataset name -> :class:`InterClassNoise` (its ``max_cosine``) or (C,) values.
        path: PNG file to write.
        threshold: same-person (merge) threshold, drawn and used for the legend's share.
        bins: bins over [-1, 1].
    """
    values = {k: v.max_cosine if isinstance(v, InterClassNoise) else v for k, v in data.items()}
    _plot_cosines(values, path, threshold, bins, _COSINE_FIGURES["inter"])


def plot_leakage_similarity(
    data: Mapping[str, IdentityLeakage | np.ndarray],
    path: str | os.PathLike,
    threshold: float = 0.7,
    bins: int = 100,
) -> None:
    """Each dataset center's largest cosine to a reference (real) center, per dataset.

    Args:
        data: dataset name -> :class:`IdentityLeakage` (its ``max_cosine``) or (Q,) values.
        path: PNG file to write.
        threshold: leakage threshold, drawn and used for the legend's share.
        bins: bins over [-1, 1].
    """
    values = {k: v.max_cosine if isinstance(v, IdentityLeakage) else v for k, v in data.items()}
    _plot_cosines(values, path, threshold, bins, _COSINE_FIGURES["leakage"])


def _plot_cosines(
    values: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    threshold: float,
    bins: int,
    figure: _CosineFigure,
) -> None:
    """One cosine distribution per dataset over [-1, 1], with the figure's threshold drawn."""
    plot_distributions(
        values,
        path,
        title=figure.title,
        xlabel=figure.xlabel,
        bins=bins,
        value_range=_COSINE_RANGE,
        threshold=threshold,
        threshold_label=f"{figure.threshold_name} threshold = {threshold:g}",
        above_threshold=figure.above_threshold,
        share_label=figure.share_label,
    )


def plot_genuine_impostor(
    data: Mapping[str, GenuineImpostor | tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    bins: int = 100,
) -> None:
    """Genuine (solid) and impostor (dashed) cosine densities with each dataset's EER threshold.

    Args:
        data: dataset name -> :class:`GenuineImpostor` or a ``(genuine, impostor)`` pair
            of score arrays (the EER is then computed here).
        path: PNG file to write.
        bins: bins over [-1, 1].

    Raises:
        ValueError: no dataset, or a dataset without a finite score.
    """
    _check_data(data)
    grid = np.linspace(*_COSINE_RANGE, bins + 1)
    fig, (ax,) = _new_figure()
    for index, (name, item) in enumerate(data.items()):
        if isinstance(item, GenuineImpostor):
            gen, imp, eer, thr = item.genuine, item.impostor, item.eer, item.eer_threshold
        else:
            gen, imp = item
            result = equal_error_rate(gen, imp)
            eer, thr = result.eer, result.threshold
        gen, _ = _finite(gen, f"{name} genuine")
        imp, _ = _finite(imp, f"{name} impostor")
        color = f"C{index % 10}"
        _density(ax, gen, grid, color=color, label=f"{name} genuine (n={gen.size:,})")
        _density(
            ax, imp, grid, color=color, linestyle="--", label=f"{name} impostor (n={imp.size:,})"
        )
        ax.axvline(
            thr,
            color=color,
            linestyle=":",
            linewidth=1.4,
            label=f"{name} EER {eer:.2%} at {thr:.3f}",
        )
    _finish(ax, "Genuine vs impostor similarity", "cosine similarity of the image pair")
    _save(fig, path)


def plot_pose(
    data: Mapping[str, Mapping[str, np.ndarray] | tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    bins: int = 60,
    yaw_range: tuple[float, float] = (-90.0, 90.0),
    pitch_range: tuple[float, float] = (-60.0, 60.0),
) -> None:
    """Figure 6 style: yaw and pitch distributions (degrees), side by side, per dataset.

    Args:
        data: dataset name -> ``{"yaw": ..., "pitch": ...}`` or ``(yaw, pitch)`` arrays.
        path: PNG file to write.
        bins: bins per panel.
        yaw_range: yaw grid in degrees.
        pitch_range: pitch grid in degrees.

    Raises:
        ValueError: no dataset, a missing angle, or an angle without a finite value.
    """
    _check_data(data)
    fig, (ax_yaw, ax_pitch) = _new_figure(ncols=2)
    for index, (name, item) in enumerate(data.items()):
        if isinstance(item, Mapping):
            missing = {"yaw", "pitch"} - set(item)
            if missing:
                raise ValueError(f"dataset {name!r}: pose data lacks {sorted(missing)}")
            yaw, pitch = item["yaw"], item["pitch"]
        else:
            yaw, pitch = item
        color = f"C{index % 10}"
        for ax, values, label, rng in (
            (ax_yaw, yaw, "yaw", yaw_range),
            (ax_pitch, pitch, "pitch", pitch_range),
        ):
            vals, dropped = _finite(values, f"{name} {label}")
            text = f"{name} (n={vals.size:,}, |{label}| mean {np.abs(vals).mean():.1f}°"
            text += f", {dropped:,} non-finite dropped)" if dropped else ")"
            _density(ax, np.clip(vals, *rng), np.linspace(*rng, bins + 1), color=color, label=text)
    _finish(ax_yaw, "Yaw distribution", "yaw (degrees)")
    _finish(ax_pitch, "Pitch distribution", "pitch (degrees)")
    _save(fig, path)


def plot_age(
    data: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    bins: int = 50,
    age_range: tuple[float, float] = (0.0, 100.0),
) -> None:
    """Figure 6 style: estimated age distribution (years) per dataset.

    Args:
        data: dataset name -> (n,) ages.
        path: PNG file to write.
        bins: grid bins.
        age_range: grid range in years (values outside are clipped into the end bins).
    """
    _check_data(data)
    clean = {name: _finite(values, name) for name, values in data.items()}
    fig, (ax,) = _new_figure()
    grid = np.linspace(*age_range, bins + 1)
    for name, (vals, dropped) in clean.items():
        text = f"{name} (n={vals.size:,}, median {np.median(vals):.1f}"
        text += f", {dropped:,} non-finite dropped)" if dropped else ")"
        _density(ax, np.clip(vals, *age_range), grid, label=text)
    _finish(ax, "Age distribution", "estimated age (years)")
    _save(fig, path)
