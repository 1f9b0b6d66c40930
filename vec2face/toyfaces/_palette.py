"""Colour ramps: identity and nuisance scalars in [0, 1] -> RGB in [0, 1]."""

from __future__ import annotations

import numpy as np

# A deliberately narrow band of tones shared by many identities (fair to light tan).
SKIN = ((0.0, (0.93, 0.77, 0.66)), (0.5, (0.86, 0.66, 0.53)), (1.0, (0.76, 0.56, 0.42)))
HAIR = (
    (0.00, (0.06, 0.05, 0.05)),
    (0.25, (0.17, 0.11, 0.08)),
    (0.50, (0.33, 0.21, 0.13)),
    (0.70, (0.52, 0.37, 0.22)),
    (0.88, (0.78, 0.63, 0.40)),
    (1.00, (0.56, 0.24, 0.11)),
)
IRIS = (
    (0.00, (0.28, 0.15, 0.07)),
    (0.35, (0.45, 0.34, 0.14)),
    (0.55, (0.30, 0.42, 0.24)),
    (0.80, (0.28, 0.45, 0.66)),
    (1.00, (0.46, 0.51, 0.56)),
)
GREY_HAIR = np.array([0.78, 0.78, 0.77], dtype=np.float32)


def ramp(t: np.ndarray, stops: tuple[tuple[float, tuple[float, float, float]], ...]) -> np.ndarray:
    """Piecewise-linear colour ramp.

    Args:
        t: positions in [0, 1], shape (B,).
        stops: (position, rgb) pairs in increasing position.

    Returns:
        float32 (B, 3).
    """
    xs = [s[0] for s in stops]
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    return np.stack([np.interp(t, xs, [s[1][k] for s in stops]) for k in range(3)], -1).astype(
        np.float32
    )
