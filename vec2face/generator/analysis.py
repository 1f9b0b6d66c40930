"""What a trained generator does with its input space (Vec2Face Figures 7-9, 12, 13, A.1).

Each analysis edits identity vectors, generates images from them, and measures the images
with the teacher (the FR model whose feature space the generator inverts):

* **interpolation** (Figure 7): ``(1 - t) a + t b`` for ``t`` in ``linspace(0, 1, steps)``;
  teacher cosine of every image to both ends (one should fall as the other rises);
* **value scaling** (Figure 8): ``f * v`` for the paper's factors, their negatives and
  halvings; teacher cosine of every image to ``v``;
* **dimension and chunk sweeps** (Figures 12, 13): one coordinate (or an 8-wide chunk) of
  ``v`` set to multiples of the vector's rms coordinate; teacher cosine to ``v``;
* **stochasticity** (Figure 9): the same vector generated under ``repeats`` seeds (the
  generator's token masks are its only randomness); the spread of teacher cosines to ``v``
  and between the repeats, and the pixel spread;

every other grid draws all its images under one token mask (from ``seed``), so a grid
shows what the vector edit changes and nothing else;
* **open-set reconstruction** (appendix A.1): the judge cosine between real images and
  images generated from their teacher features, as a histogram — with any other
  generator's outputs, given as an image folder paired with the originals, on the same
  axes (the paper compares Arc2Face this way).

Everything here is pure: arrays in, arrays and figures out; :func:`analyze_generator`
writes the PNG grids, the histogram and ``analysis.json`` into a folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from vec2face.data.images import decode_image
from vec2face.errors import ConfigError, DataFormatError
from vec2face.generator.data import tensor_to_image
from vec2face.generator.quality import embed_images, measure_generator_quality
from vec2face.utils.io import atomic_dir, write_bytes_atomic

__all__ = [
    "CHUNK_WIDTH",
    "HALVING_FACTORS",
    "NEGATIVE_FACTORS",
    "SCALE_FACTORS",
    "SWEEP_MULTIPLES",
    "AnalysisConfig",
    "analyze_generator",
    "dimension_sweep",
    "interpolate",
    "labelled_grid",
    "paired_folder_images",
    "reconstruction_cosines",
    "scale",
]

#: Figure 8's factors; their negatives and halvings are the other two rows.
SCALE_FACTORS: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 3.0, 10.0, 100.0, 200.0)
NEGATIVE_FACTORS: tuple[float, ...] = (-0.5,) + tuple(-f for f in SCALE_FACTORS[1:])
HALVING_FACTORS: tuple[float, ...] = tuple(0.5**k for k in range(8))
#: sweep values in units of the vector's rms coordinate (``||v|| / sqrt(d)``): a single
#: coordinate of a 512-d vector is ~1 rms, so +-20 makes it the vector's largest by far
SWEEP_MULTIPLES: tuple[float, ...] = (-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0)
CHUNK_WIDTH = 8  # Figure 13's chunk

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


# ---------------------------------------------------------------------------------------
# Vector edits (pure)
# ---------------------------------------------------------------------------------------
def interpolate(a: np.ndarray, b: np.ndarray, steps: int = 6) -> np.ndarray:
    """``steps`` vectors from ``a`` to ``b`` on the straight line: (steps, d) float32."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"interpolate: need two (d,) vectors, got {a.shape} and {b.shape}")
    if steps < 2:
        raise ValueError(f"interpolate: steps must be >= 2, got {steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1.0 - t) * a + t * b).astype(np.float32)


def scale(v: np.ndarray, factors: Sequence[float]) -> np.ndarray:
    """``f * v`` for every factor: (len(factors), d) float32."""
    v = np.asarray(v, np.float64)
    if v.ndim != 1:
        raise ValueError(f"scale: need a (d,) vector, got {v.shape}")
    return (np.asarray(factors, np.float64)[:, None] * v).astype(np.float32)


def dimension_sweep(
    v: np.ndarray, start: int, width: int = 1, multiples: Sequence[float] = SWEEP_MULTIPLES
) -> np.ndarray:
    """Copies of ``v`` whose coordinates ``[start, start + width)`` are set to each multiple
    of the vector's rms coordinate ``||v|| / sqrt(d)``: (len(multiples), d) float32."""
    v = np.asarray(v, np.float64)
    if v.ndim != 1:
        raise ValueError(f"dimension_sweep: need a (d,) vector, got {v.shape}")
    if start < 0 or width < 1 or start + width > v.shape[0]:
        raise ValueError(
            f"dimension_sweep: coordinates [{start}, {start + width}) outside 0..{v.shape[0]}"
        )
    rms = np.linalg.norm(v) / np.sqrt(v.shape[0])
    out = np.repeat(v[None], len(multiples), axis=0)
    out[:, start : start + width] = np.asarray(multiples, np.float64)[:, None] * rms
    return out.astype(np.float32)


def _cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (n, d) and (n, d) or (d,): (n,) float64; 0 for a zero row."""
    x = np.asarray(x, np.float64)
    y = np.broadcast_to(np.asarray(y, np.float64), x.shape)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.divide((x * y).sum(1), den, out=np.zeros(len(x)), where=den > 0)


def reconstruction_cosines(judge: nn.Module, originals: np.ndarray, generated: np.ndarray,
                           batch_size: int = 64, amp: bool = True) -> np.ndarray:
    """Judge cosine (flip-summed features) between each original and its generated image.

    Args:
        judge: FR model that took no part in training the generator.
        originals, generated: uint8 (N, 112, 112, 3), paired row by row.

    Returns:
        float64 (N,) cosines.
    """
    if originals.shape != generated.shape:
        raise ValueError(
            f"originals {originals.shape} and generated {generated.shape} must pair row by row"
        )
    a = embed_images(judge, originals, batch_size, amp)
    b = embed_images(judge, generated, batch_size, amp)
    return _cos(a, b)


# ---------------------------------------------------------------------------------------
# Image folders and grids
# ---------------------------------------------------------------------------------------
def _image_files(folder: Path) -> dict[str, Path]:
    """Relative path without suffix -> file, for every image under ``folder``."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not an image folder")
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
            files[path.relative_to(folder).with_suffix("").as_posix()] = path
    if not files:
        raise ConfigError(f"{folder}: no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    return files


def _read_image(path: Path) -> np.ndarray:
    try:
        image = decode_image(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot decode the image ({exc})") from None
    if image.shape != (112, 112, 3):
        raise DataFormatError(f"{path}: expected a 112x112 RGB image, got {image.shape}")
    return image


def paired_folder_images(
    generated_dir: str | os.PathLike, originals_dir: str | os.PathLike
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Another generator's outputs and the originals they were made from, paired by relative
    path (the suffix may differ: ``a/1.png`` pairs with ``a/1.jpg``).

    Returns:
        (names, originals uint8 (N, 112, 112, 3), generated uint8 (N, 112, 112, 3)).

    Raises:
        ConfigError: a folder without images, or a generated image without an original
            (naming up to five of them).
        DataFormatError: an image that does not decode or is not 112x112 RGB.
    """
    generated = _image_files(Path(generated_dir))
    originals = _image_files(Path(originals_dir))
    missing = sorted(set(generated) - set(originals))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ConfigError(
            f"{generated_dir}: {len(missing)} generated images have no original in "
            f"{originals_dir}: {missing[:5]}{more}"
        )
    names = sorted(generated)
    return (
        names,
        np.stack([_read_image(originals[n]) for n in names]),
        np.stack([_read_image(generated[n]) for n in names]),
    )


def labelled_grid(
    images: np.ndarray,
    col_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    cell_labels: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Tile uint8 (R, C, H, W, 3) images into one uint8 image (PIL's built-in font).

    ``col_labels`` head the columns, ``row_labels`` sit left of the rows, and
    ``cell_labels`` (R x C) caption each image in a strip above its row.
    """
    rows, cols, h, w, _ = images.shape
    pad = 2
    top = 12 if col_labels else 0
    strip = 12 if cell_labels is not None else 0
    left = 6 * max((len(s) for s in row_labels), default=0) + (8 if row_labels else 0)
    row_h = strip + h + pad
    canvas = Image.new("RGB", (left + cols * (w + pad) + pad, top + rows * row_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(col_labels):
        draw.text((left + pad + c * (w + pad) + 2, 0), text, fill="black")
    for r in range(rows):
        y = top + pad + r * row_h
        if r < len(row_labels):
            draw.text((2, y + strip + h // 2 - 5), row_labels[r], fill="black")
        for c in range(cols):
            x = left + pad + c * (w + pad)
            if cell_labels is not None and c < len(cell_labels[r]):
                draw.text((x + 2, y), cell_labels[r][c], fill="black")
            canvas.paste(Image.fromarray(images[r, c]), (x, y + strip))
    return np.asarray(canvas)


def _png(image: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x) >= 0.01 or x == 0 else f"1/{round(1 / x)}"


# ---------------------------------------------------------------------------------------
# The analyses
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnalysisConfig:
    """Settings of :func:`analyze_generator`.

    Attributes:
        identities: identity vectors analysed (rows of the interpolation, scaling and
            stochasticity grids); the sweeps use the first.
        steps: interpolation steps (Figure 7: 6).
        repeats: generations of one vector under different seeds (Figure 9: 8).
        sweep_dims: first coordinate of each swept dimension / chunk (one grid row each).
        chunk_width: width of a chunk (Figure 13: 8).
        seed: seed of the generator's masks (every grid cell uses it but stochasticity).
        batch_size: images per forward pass.
        amp: bf16 for the generator and the FR models.
    """

    identities: int = 4
    steps: int = 6
    repeats: int = 8
    sweep_dims: tuple[int, ...] = (0, 128, 256, 384)
    chunk_width: int = CHUNK_WIDTH
    seed: int = 0
    batch_size: int = 64
    amp: bool = True
    multiples: tuple[float, ...] = field(default=SWEEP_MULTIPLES)

    def __post_init__(self) -> None:
        for name in ("identities", "steps", "repeats", "chunk_width", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"analysis: {name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 2:
            raise ConfigError(f"analysis: steps must be >= 2, got {self.steps}")


class _Runner:
    """Generates images for (rows, cols, d) vector grids and measures them with the teacher."""

    def __init__(self, generator: nn.Module, teacher: nn.Module, config: AnalysisConfig):
        self.generator, self.teacher, self.config = generator, teacher, config

    def images(self, vectors: np.ndarray, seed: int | None = None) -> np.ndarray:
        """(..., d) float32 -> uint8 (..., 112, 112, 3), every image under one token mask.

        The generator's masks are its only randomness; drawing one (from ``seed``) for the
        whole grid makes a grid show what the vector changes and nothing else.
        """
        flat = torch.from_numpy(np.ascontiguousarray(vectors.reshape(-1, vectors.shape[-1])))
        g = torch.Generator(device="cpu").manual_seed(self.config.seed if seed is None else seed)
        keep, mask = self.generator.draw_masks(1, self.generator.gen_masking, g, "cpu")
        n = len(flat)
        batches = self.generator.iter_generate(
            flat, keep.expand(n, -1), mask.expand(n, -1), self.config.batch_size, self.config.amp
        )
        out = torch.cat([images for _, images in batches])
        return tensor_to_image(out).reshape(*vectors.shape[:-1], 112, 112, 3)

    def features(self, images: np.ndarray) -> np.ndarray:
        """uint8 (..., 112, 112, 3) -> teacher features of each image alone (..., D)."""
        flat = images.reshape(-1, 112, 112, 3)
        f = embed_images(self.teacher, flat, self.config.batch_size, self.config.amp, flip=False)
        return f.reshape(*images.shape[:-3], -1)


def _rounded(x: np.ndarray) -> list:
    return np.round(np.asarray(x, np.float64), 4).tolist()


def analyze_generator(
    generator: nn.Module,
    teacher: nn.Module,
    identity_vectors: np.ndarray,
    out_dir: str | os.PathLike,
    config: AnalysisConfig | None = None,
    *,
    judge: nn.Module | None = None,
    benchmark: tuple[np.ndarray, np.ndarray] | None = None,
    compare: tuple[str, np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Run every analysis and write its grids, plots and ``analysis.json`` into ``out_dir``.

    Args:
        generator: a :class:`~vec2face.models.generator.Vec2FaceGenerator`.
        teacher: the FR model whose features the generator consumes.
        identity_vectors: (N, d) identity vectors; the first ``config.identities`` are used
            (at least 2: the interpolation pairs consecutive rows).
        out_dir: output folder, replaced atomically when complete.
        config: settings (defaults: the paper's figures).
        judge: independent FR model; with ``benchmark`` or ``compare`` it scores open-set
            reconstruction.
        benchmark: (uint8 (2P, 112, 112, 3) images, (P,) issame) of a verification set:
            each pair's first image is rebuilt from its teacher feature (appendix A.1).
        compare: (name, originals, generated) of another generator's outputs paired with the
            images they were made from; its judge cosines go on the same histogram.

    Returns:
        The content of ``analysis.json``: per analysis, its grid file and teacher figures.

    Raises:
        ConfigError: too few identity vectors, a vector of the wrong dimension, or
            ``benchmark``/``compare`` without a ``judge``.
    """
    from vec2face.reports.plots import plot_distributions

    config = config or AnalysisConfig()
    vectors = np.array(identity_vectors, np.float32)  # a copy: the input may be a read-only mmap
    ids = _checked_identities(generator, vectors, config, judge, benchmark, compare)
    run = _Runner(generator, teacher, config)
    figures: dict[str, bytes] = {}
    summary: dict = {"identities": len(ids), "seed": config.seed}
    for analysis in (_interpolation, _scaling, _sweeps, _stochasticity):
        figures.update(analysis(run, ids, config, summary))
    histograms: dict[str, np.ndarray] = {}
    if benchmark is not None:
        figures.update(
            _reconstruction(generator, teacher, judge, benchmark, config, summary, histograms)
        )
    if compare is not None:
        name, originals, generated = compare
        cos = reconstruction_cosines(judge, originals, generated, config.batch_size, config.amp)
        histograms[name] = cos
        summary["compare"] = {"name": name, "images": len(cos), "judge_cos_mean": float(cos.mean())}
    if histograms:
        summary["reconstruction_similarity"] = {
            "file": "reconstruction_similarity.png",
            **{n: {"mean": float(c.mean()), "median": float(np.median(c)), "n": len(c)}
               for n, c in histograms.items()},
        }

    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        for name, data in figures.items():
            write_bytes_atomic(tmp / name, data)
        if histograms:
            plot_distributions(
                histograms, tmp / "reconstruction_similarity.png",
                "Open-set reconstruction (A.1): judge cosine, original vs generated",
                "cosine similarity", bins=50, value_range=(-0.2, 1.0),
            )
        (tmp / "analysis.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _checked_identities(generator, vectors, config, judge, benchmark, compare) -> np.ndarray:
    """The first ``config.identities`` vectors, once every input is checked (ConfigError)."""
    rep_dim = generator.arch.rep_dim
    if vectors.ndim != 2 or vectors.shape[1] != rep_dim:
        raise ConfigError(
            f"identity vectors must be (N, {rep_dim}) for this generator, got {vectors.shape}"
        )
    k = min(config.identities, len(vectors))
    if k < 2:
        raise ConfigError(f"the analyses need at least 2 identity vectors, got {len(vectors)}")
    if not np.isfinite(vectors[:k]).all():
        raise ConfigError("identity vectors contain NaN/inf")
    for d in config.sweep_dims:
        if not 0 <= d <= rep_dim - config.chunk_width:
            raise ConfigError(
                f"sweep dimension {d} (chunk width {config.chunk_width}) is outside 0..{rep_dim}"
            )
    if (benchmark is not None or compare is not None) and judge is None:
        raise ConfigError("open-set reconstruction needs a judge FR model")
    return vectors[:k]


def _interpolation(run: _Runner, ids: np.ndarray, config: AnalysisConfig, summary: dict):
    """Figure 7: consecutive identities, the last back to the first."""
    k = len(ids)
    pairs = [(i, (i + 1) % k) for i in range(k)] if k > 2 else [(0, 1)]
    grid_v = np.stack([interpolate(ids[a], ids[b], config.steps) for a, b in pairs])
    grid_i = run.images(grid_v)
    f = run.features(grid_i)
    to_a = np.stack([_cos(f[r], ids[a]) for r, (a, _) in enumerate(pairs)])
    to_b = np.stack([_cos(f[r], ids[b]) for r, (_, b) in enumerate(pairs)])
    t = np.linspace(0, 1, config.steps)
    summary["interpolation"] = {
        "file": "interpolation.png", "t": _rounded(t), "pairs": [list(p) for p in pairs],
        "teacher_cos_to_start": _rounded(to_a.mean(0)),
        "teacher_cos_to_end": _rounded(to_b.mean(0)),
    }
    return {"interpolation.png": _png(
        labelled_grid(grid_i, [f"t={x:.2f}" for x in t], [f"{a}->{b}" for a, b in pairs])
    )}


def _scaling(run: _Runner, ids: np.ndarray, config: AnalysisConfig, summary: dict):
    """Figure 8, for the first identity only (three rows per identity make a tall figure)."""
    rows = {"scale": SCALE_FACTORS, "negative": NEGATIVE_FACTORS, "halving": HALVING_FACTORS}
    grid_v = np.stack([scale(ids[0], fs) for fs in rows.values()])
    grid_i = run.images(grid_v)
    f = run.features(grid_i)
    cols = max(len(fs) for fs in rows.values())
    canvas = np.full((len(rows), cols, 112, 112, 3), 255, np.uint8)
    canvas[:, : grid_i.shape[1]] = grid_i
    summary["scaling"] = {
        "file": "scaling.png",
        **{name: {"factors": list(fs), "teacher_cos_to_vector": _rounded(_cos(f[r], ids[0]))}
           for r, (name, fs) in enumerate(rows.items())},
    }
    return {"scaling.png": _png(labelled_grid(
        canvas, [], list(rows), [[f"x {_fmt(x)}" for x in fs] for fs in rows.values()]
    ))}


def _sweeps(run: _Runner, ids: np.ndarray, config: AnalysisConfig, summary: dict):
    """Figures 12, 13: one coordinate, then an 8-wide chunk, set to multiples of the rms."""
    figures = {}
    base_f = run.features(run.images(ids[:1]))[0]
    for name, width in (("dimension_sweep", 1), ("chunk_sweep", config.chunk_width)):
        grid_v = np.stack([
            dimension_sweep(ids[0], d, width, config.multiples) for d in config.sweep_dims
        ])
        grid_i = run.images(grid_v)
        f = run.features(grid_i)
        labels = [f"d{d}" if width == 1 else f"d{d}-{d + width - 1}" for d in config.sweep_dims]
        figures[f"{name}.png"] = _png(
            labelled_grid(grid_i, [f"{m:+g} rms" for m in config.multiples], labels)
        )
        summary[name] = {
            "file": f"{name}.png", "width": width, "dims": list(config.sweep_dims),
            "multiples": list(config.multiples),
            "teacher_cos_to_vector": [_rounded(_cos(f[r], ids[0])) for r in range(len(labels))],
            "teacher_cos_to_unchanged_image": [
                _rounded(_cos(f[r], base_f)) for r in range(len(labels))
            ],
        }
    return figures


def _stochasticity(run: _Runner, ids: np.ndarray, config: AnalysisConfig, summary: dict):
    """Figure 9: the same vector under ``config.repeats`` seeds."""
    k = len(ids)
    reps = np.stack([run.images(ids, seed=config.seed + s) for s in range(config.repeats)], 1)
    f = run.features(reps)  # (k, repeats, D)
    to_v = np.stack([_cos(f[i], ids[i]) for i in range(k)])
    fn = f / np.linalg.norm(f, axis=-1, keepdims=True)
    gram = np.einsum("ird,isd->irs", fn, fn)
    off = gram[:, ~np.eye(config.repeats, dtype=bool)]
    summary["stochasticity"] = {
        "file": "stochasticity.png", "repeats": config.repeats,
        "teacher_cos_to_vector": {"mean": float(to_v.mean()), "std": float(to_v.std()),
                                  "min": float(to_v.min()), "max": float(to_v.max())},
        "teacher_cos_between_repeats": {"mean": float(off.mean()), "min": float(off.min())},
        # per identity, the std over repeats of each pixel, averaged: 0 = deterministic
        "pixel_std": float(reps.astype(np.float64).std(axis=1).mean()),
    }
    return {"stochasticity.png": _png(
        labelled_grid(reps, [f"seed {config.seed + s}" for s in range(config.repeats)],
                      [f"id {i}" for i in range(k)])
    )}


def _reconstruction(generator, teacher, judge, benchmark, config, summary, histograms):
    """Appendix A.1: each benchmark pair's first image rebuilt from its teacher feature."""
    images, issame = benchmark
    quality, generated = measure_generator_quality(
        generator, teacher, judge, images, issame, config.seed, config.batch_size, config.amp
    )
    cos = reconstruction_cosines(judge, images[0::2], generated, config.batch_size, config.amp)
    histograms["this generator"] = cos
    n = min(8, len(generated))
    summary["reconstruction"] = {"file": "reconstruction.png", **quality.as_dict()}
    return {"reconstruction.png": _png(labelled_grid(
        np.stack([images[0::2][:n], generated[:n]]), [], ["original", "generated"]
    ))}
