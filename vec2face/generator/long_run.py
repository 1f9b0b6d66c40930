"""The long generator run: chunks that pause at a time budget and add up to one run.

``vec2face generator train --profile toy-long --max-minutes M --resume DIR`` runs one chunk
(docs/long_run.md): it prepares the toy data inside the run folder ``DIR`` when it is not
there yet (:func:`vec2face.zoo.build.prepare_generator_data`, the zoo's own preparation),
trains from ``DIR/checkpoints/last.pt`` until the budget is spent (:class:`ChunkBudget`,
checked at optimiser-step boundaries; the paused checkpoint continues exactly), then on
rank 0 scores the checkpoint as the zoo scores its generator (the zoo teacher's features of
toy-LFW images rebuilt, judged by the zoo judge) and writes, each atomically:

* ``DIR/curve.csv``: one row per chunk (step, epoch, images seen, training wall seconds,
  device, every figure); a chunk re-scored at the same step replaces its row;
* ``DIR/curve.png``: judge cosine, identity preservation, sharpness ratio and face MAE
  against the step, with the targets drawn (the README shows this plot);
* ``DIR/recon/step_<N>.png``: toy-LFW originals beside their reconstructions.

A chunk's checkpoint becomes the zoo generator with ``vec2face zoo build generator --from
DIR/checkpoints/last.pt``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from PIL import Image

from vec2face.generator.train import ChunkBudget, GeneratorTrainConfig, fit
from vec2face.tracking import Tracker
from vec2face.utils.io import atomic_path
from vec2face.zoo.build import GENERATOR_PAIRS, GeneratorData, prepare_generator_data

__all__ = [
    "CURVE_CSV",
    "CURVE_PNG",
    "TARGETS",
    "append_curve",
    "plot_curve",
    "prepare_run",
    "run_chunk",
    "run_folder_chunk",
    "save_recon_grid",
    "score_checkpoint",
]

log = logging.getLogger(__name__)

CURVE_CSV = "curve.csv"
CURVE_PNG = "curve.png"
RECON_DIR = "recon"
#: the columns every curve row starts with; the figures follow in name order
CURVE_COLUMNS = ("step", "epoch", "images_seen", "wall_s", "device")
#: the figures the curve plots, and the target drawn on each (None: no target)
TARGETS: dict[str, float | None] = {
    "judge_cosine_recon": 0.75,
    "identity_preservation": 0.9,
    "sharpness_ratio": 0.5,
    "face_mae": None,
}
#: rows (original | reconstruction) of each chunk's reconstruction grid
RECON_ROWS = 6


def prepare_run(
    params: dict[str, Any], run_dir: str | os.PathLike, zoo: str | os.PathLike | None = None,
    progress: bool = True,
) -> GeneratorData:
    """The long run's data inside ``run_dir``, rendered when missing (reused otherwise):
    the same pool, subset, zoo-teacher features and toy-LFW as the zoo generator's."""
    return prepare_generator_data(params, run_dir, zoo, progress)


def run_folder_chunk(
    run_dir: str | os.PathLike,
    params: dict[str, Any],
    profile: str,
    overrides: dict[str, Any],
    *,
    zoo: str | os.PathLike | None = None,
    progress: bool = True,
    **chunk: Any,
) -> dict[str, Any]:
    """One chunk of the long run in ``run_dir`` (what ``vec2face generator train --resume
    DIR`` runs without ``--data``): the toy data prepared there when missing, the recipe
    ``profile`` < ``overrides`` with the zoo teacher (an override wins), then
    :func:`run_chunk` (``chunk``: its ``budget``, ``pairs`` and ``tracker``).

    Under ``torchrun`` rank 0 prepares the data while the other ranks wait, then they
    reuse it (nothing is rendered twice, nothing read half-written).
    """
    from vec2face.generator.train import generator_train_config
    from vec2face.training import barrier, cleanup_distributed, init_distributed

    owns_group = not (dist.is_available() and dist.is_initialized())
    env = init_distributed(overrides.get("device") or "auto")
    try:
        if env.is_main:
            data = prepare_run(params, run_dir, zoo, progress)
        barrier()
        if not env.is_main:
            data = prepare_run(params, run_dir, zoo, progress=False)
        teacher = {"teacher": data.teacher_meta["architecture"]["name"],
                   "teacher_checkpoint": str(data.teacher_dir)}
        config = generator_train_config(
            profile, None, {**teacher, **{k: v for k, v in overrides.items() if v is not None}}
        )
        return run_chunk(config, run_dir, data, zoo=zoo, progress=progress, **chunk)
    finally:
        if owns_group:
            cleanup_distributed()


def run_chunk(
    config: GeneratorTrainConfig,
    run_dir: str | os.PathLike,
    data: GeneratorData,
    *,
    budget: ChunkBudget | None,
    pairs: int = GENERATOR_PAIRS,
    zoo: str | os.PathLike | None = None,
    tracker: Tracker | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one chunk of the run in ``run_dir`` and, on rank 0, score its checkpoint.

    Args:
        config: the run's recipe (its teacher must be the zoo teacher ``data`` holds).
        run_dir: the run folder (checkpoints/, samples/, curve.csv, curve.png, recon/).
        data: what :func:`prepare_run` returned for ``run_dir``.
        budget: when the chunk pauses (None: train to the end).
        pairs: toy-LFW pairs scored after the chunk.
        zoo: the zoo whose judge scores (default: ``$VEC2FACE_ZOO``, else the package's).
        tracker: receives the training's params and per-epoch metrics.
        progress: progress bars.

    Returns:
        :func:`vec2face.generator.train.fit`'s summary, plus on rank 0 ``figures``,
        ``curve_csv``, ``curve_png`` and ``recon``.
    """
    from vec2face.zoo.models import load

    run_dir = Path(run_dir)
    summary = fit(config, data.lmdb, run_dir, tracker=tracker, resume=True,
                  progress=progress, budget=budget)
    if summary["rank"] != 0:
        return summary
    step = int(summary["global_step"])
    recon = run_dir / RECON_DIR / f"step_{step}.png"
    figures = score_checkpoint(
        Path(summary["checkpoint"]), data, load("judge", zoo), pairs, recon
    )
    row = {"step": step, "epoch": summary["epoch"], "images_seen": summary["images_seen"],
           "wall_s": round(float(summary["train_seconds"]), 1), "device": summary["device"],
           **figures}
    append_curve(run_dir / CURVE_CSV, row)
    plot_curve(run_dir / CURVE_CSV, run_dir / CURVE_PNG)
    log.info("chunk scored at step %d: %s", step,
             ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    return {**summary, "figures": figures, "curve_csv": str(run_dir / CURVE_CSV),
            "curve_png": str(run_dir / CURVE_PNG), "recon": str(recon)}


def score_checkpoint(
    checkpoint: Path, data: GeneratorData, judge, pairs: int, recon: Path | None = None
) -> dict[str, float]:
    """The zoo generator figures of a training checkpoint's generator on ``pairs`` toy-LFW
    pairs (:func:`vec2face.zoo.figures.generator_figures`), and its reconstruction grid
    written to ``recon`` (the first :data:`RECON_ROWS` scored pairs' first images)."""
    from vec2face.data.images import decode_image
    from vec2face.data.verification_bin import read_pair_sample
    from vec2face.models.generator import load_generator_checkpoint
    from vec2face.zoo.figures import generator_figures

    generator, _ = load_generator_checkpoint(checkpoint)
    figures, generated = generator_figures(generator, data.teacher, judge, data.lfw, pairs)
    if recon is not None:
        blobs, _ = read_pair_sample(data.lfw, pairs)
        rows = min(RECON_ROWS, len(generated))
        originals = np.stack([decode_image(b) for b in blobs[0:2 * rows:2]])
        save_recon_grid(originals, generated[:rows], recon)
    return figures


def save_recon_grid(originals: np.ndarray, recons: np.ndarray, path: Path) -> Path:
    """A PNG with one row per image: original | reconstruction (atomic).

    Args:
        originals: uint8 (K, H, W, 3).
        recons: uint8 (K, H, W, 3), in the same order.
    """
    if originals.shape != recons.shape:
        raise ValueError(f"originals {originals.shape} and reconstructions {recons.shape} "
                         "differ in shape")
    rows = np.concatenate([originals, recons], axis=2)  # (K, H, 2W, 3)
    grid = rows.reshape(-1, rows.shape[2], 3)  # (K*H, 2W, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path


def read_curve(path: Path) -> list[dict[str, str]]:
    """The rows of a curve CSV (none when the file does not exist yet)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_curve(path: Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``row`` to the curve CSV at ``path`` (atomic rewrite), replacing a row of the
    same step (a chunk scored again), rows ordered by step; returns the rows written."""
    rows: list[dict[str, Any]] = [r for r in read_curve(path) if int(r["step"]) != row["step"]]
    rows = sorted([*rows, row], key=lambda r: int(r["step"]))
    figures = sorted({k for r in rows for k in r} - set(CURVE_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, [*CURVE_COLUMNS, *figures], restval="",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())
    return rows


def plot_curve(
    csv_path: Path, png_path: Path,
    title: str = "vec2face toy-long generator run (toy-LFW, zoo judge)",
) -> Path:
    """Draw the :data:`TARGETS` figures of a curve CSV against the step, each in its own
    panel with its target as a dashed line (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a training machine
    import matplotlib.pyplot as plt

    rows = read_curve(csv_path)
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    for ax, (name, target) in zip(axes.flat, TARGETS.items(), strict=True):
        values = [float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows]
        ax.plot(steps, values, marker="o", markersize=3)
        if target is not None:
            ax.axhline(target, linestyle="--", color="tab:red", label=f"target {target}")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return png_path
