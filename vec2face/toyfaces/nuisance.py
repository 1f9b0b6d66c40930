"""Nuisance parameters of the procedural face world: what changes from image to image.

A nuisance row is one float32 row of :data:`NUISANCE_FIELDS`:

- pose: ``yaw`` (degrees, + turns the nose toward the image's right), ``pitch``
  (degrees, + looks up), ``roll`` (degrees, + turns the face clockwise);
- ``age`` in years (greying, lines, receding hair, sagging);
- expression: ``expression`` (smile, 0..1), ``mouth_open`` (0..1), ``brow_raise``
  (-1 frown .. 1 raised), ``eye_close`` (0..1), ``gaze_x``/``gaze_y`` (-1..1);
- light: ``light_azimuth``/``light_elevation`` (degrees), ``light_strength``,
  ``light_ambient``, ``light_warmth`` (-1 cold .. 1 warm);
- background: two RGB colours (0..1) blended along ``bg_angle`` (degrees), a blotch
  texture of strength ``bg_texture`` picked by ``bg_seed``;
- ``cloth_r/g/b``: clothing colour at the bottom of the frame;
- occluders: ``glasses`` (0/1), ``sunglasses`` (lens darkness 0..1, only with glasses),
  ``occluder`` (0/1), ``occluder_kind`` (< 0.5 bar, else hand), ``occluder_x``,
  ``occluder_y`` (centre, pixels from the image centre), ``occluder_angle`` (degrees);
- framing: ``scale`` (relative), ``shift_x``/``shift_y`` (pixels);
- quality: ``blur`` (Gaussian sigma, px), ``noise`` (std on 0..255), ``noise_seed``
  (picks the noise pattern), ``jpeg_quality`` (30..95, only recorded: the writer
  applies it when encoding).
"""

from __future__ import annotations

import numpy as np

from vec2face.toyfaces._fields import column_index

NUISANCE_FIELDS: tuple[str, ...] = (
    "yaw",
    "pitch",
    "roll",
    "age",
    "expression",
    "mouth_open",
    "brow_raise",
    "eye_close",
    "gaze_x",
    "gaze_y",
    "light_azimuth",
    "light_elevation",
    "light_strength",
    "light_ambient",
    "light_warmth",
    "bg_r",
    "bg_g",
    "bg_b",
    "bg_r2",
    "bg_g2",
    "bg_b2",
    "bg_angle",
    "bg_texture",
    "bg_seed",
    "cloth_r",
    "cloth_g",
    "cloth_b",
    "glasses",
    "sunglasses",
    "occluder",
    "occluder_kind",
    "occluder_x",
    "occluder_y",
    "occluder_angle",
    "scale",
    "shift_x",
    "shift_y",
    "blur",
    "noise",
    "noise_seed",
    "jpeg_quality",
)
_INDEX = {name: i for i, name in enumerate(NUISANCE_FIELDS)}


def field_index(name: str) -> int:
    """Column of ``name`` in a nuisance row (ValueError: not a nuisance field)."""
    return column_index(_INDEX, name, "nuisance")


def _yaw(n: int, rng: np.random.Generator) -> np.ndarray:
    # Real FR sets are mostly frontal with a long tail of turned heads.
    kind = rng.random(n)
    narrow = rng.normal(0.0, 10.0, n)
    wide = rng.normal(0.0, 30.0, n)
    flat = rng.uniform(-75.0, 75.0, n)
    yaw = np.where(kind < 0.6, narrow, np.where(kind < 0.88, wide, flat))
    return np.clip(yaw, -75.0, 75.0)


def sample_nuisance(n: int, rng: np.random.Generator, **fixed: float | np.ndarray) -> np.ndarray:
    """Draw ``n`` nuisance rows, optionally pinning some fields.

    Args:
        n: number of images.
        rng: the random source; every field is drawn (even a fixed one) so that
            the other fields do not depend on what was fixed.
        **fixed: field name -> scalar or (n,) array that replaces the drawn value,
            e.g. ``yaw=0.0`` or ``age=np.array([...])``.

    Returns:
        float32 array (n, len(NUISANCE_FIELDS)).

    Raises:
        ValueError: a fixed field is unknown or its value has the wrong shape.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for name in fixed:
        field_index(name)
    cols: dict[str, np.ndarray] = {}
    u = rng.uniform
    cols["yaw"] = _yaw(n, rng)
    cols["pitch"] = np.clip(rng.normal(0.0, 9.0, n), -25.0, 25.0)
    cols["roll"] = np.clip(rng.normal(0.0, 5.0, n), -15.0, 15.0)
    cols["age"] = 18.0 + 62.0 * rng.beta(1.3, 1.7, n)
    smile = rng.random(n) < 0.45
    cols["expression"] = np.where(smile, u(0.2, 1.0, n), u(0.0, 0.15, n))
    opened = rng.random(n) < 0.2
    cols["mouth_open"] = np.where(opened, u(0.2, 1.0, n), 0.0)
    cols["brow_raise"] = np.clip(rng.normal(0.0, 0.35, n), -1.0, 1.0)
    blink = rng.random(n) < 0.06
    cols["eye_close"] = np.where(blink, u(0.5, 1.0, n), u(0.0, 0.2, n))
    cols["gaze_x"] = np.clip(rng.normal(0.0, 0.3, n), -1.0, 1.0)
    cols["gaze_y"] = np.clip(rng.normal(0.0, 0.2, n), -1.0, 1.0)
    cols["light_azimuth"] = np.clip(rng.normal(0.0, 35.0, n), -85.0, 85.0)
    cols["light_elevation"] = u(-10.0, 55.0, n)
    cols["light_strength"] = u(0.45, 0.95, n)
    cols["light_ambient"] = u(0.25, 0.5, n)
    cols["light_warmth"] = np.clip(rng.normal(0.0, 0.4, n), -1.0, 1.0)
    # Muted colours as in photos: a grey level plus a modest tint.
    grey = u(0.15, 0.85, (n, 1))
    base = np.clip(grey + rng.normal(0.0, 0.12, (n, 3)), 0.02, 0.98)
    base2 = np.clip(base + rng.normal(0.0, 0.12, (n, 3)), 0.0, 1.0)
    for k, c in enumerate("rgb"):
        cols[f"bg_{c}"] = base[:, k]
        cols[f"bg_{c}2"] = base2[:, k]
    cols["bg_angle"] = u(0.0, 360.0, n)
    cols["bg_texture"] = u(0.0, 0.8, n) ** 2
    cols["bg_seed"] = u(0.0, 1.0, n)
    cloth = u(0.05, 0.85, (n, 3))
    for k, c in enumerate("rgb"):
        cols[f"cloth_{c}"] = cloth[:, k]
    cols["glasses"] = (rng.random(n) < 0.15).astype(np.float64)
    cols["sunglasses"] = np.where(rng.random(n) < 0.15, u(0.5, 1.0, n), 0.0)
    cols["occluder"] = (rng.random(n) < 0.05).astype(np.float64)
    cols["occluder_kind"] = u(0.0, 1.0, n)
    cols["occluder_x"] = u(-30.0, 30.0, n)
    cols["occluder_y"] = u(-15.0, 40.0, n)
    cols["occluder_angle"] = u(-40.0, 40.0, n)
    cols["scale"] = np.clip(rng.normal(1.0, 0.03, n), 0.92, 1.08)
    cols["shift_x"] = np.clip(rng.normal(0.0, 1.2, n), -3.0, 3.0)
    cols["shift_y"] = np.clip(rng.normal(0.0, 1.2, n), -3.0, 3.0)
    sharp = rng.random(n) < 0.55
    cols["blur"] = np.where(sharp, u(0.0, 0.4, n), rng.gamma(2.0, 0.35, n).clip(0.0, 2.5))
    cols["noise"] = rng.gamma(1.5, 2.0, n).clip(0.0, 14.0)
    cols["noise_seed"] = u(0.0, 1.0, n)
    cols["jpeg_quality"] = np.round(np.clip(rng.normal(80.0, 12.0, n), 30.0, 95.0))

    for name, value in fixed.items():
        v = np.asarray(value, dtype=np.float64)
        if v.ndim == 0:
            v = np.full(n, float(v))
        if v.shape != (n,):
            raise ValueError(
                f"fixed nuisance field {name!r} must be a scalar or shape ({n},), got {v.shape}"
            )
        cols[name] = v
    # Sunglasses only exist on glasses.
    cols["sunglasses"] = cols["sunglasses"] * (cols["glasses"] > 0.5)
    out = np.empty((n, len(NUISANCE_FIELDS)), dtype=np.float32)
    for name, i in _INDEX.items():
        out[:, i] = cols[name]
    return out
