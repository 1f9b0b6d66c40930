"""Fixed random textures shared by every render (built once from a constant seed)."""

from __future__ import annotations

import functools

import numpy as np

TILE = 160  # noise tiles are larger than the frame so that offsets pick different patches


def _smooth(x: np.ndarray, passes: int) -> np.ndarray:
    # Repeated 3-tap box filtering along both axes approximates a Gaussian blur.
    for _ in range(passes):
        x = (np.roll(x, 1, 0) + x + np.roll(x, -1, 0)) / 3.0
        x = (np.roll(x, 1, 1) + x + np.roll(x, -1, 1)) / 3.0
    return x


@functools.cache
def textures() -> dict[str, np.ndarray]:
    """The texture bank.

    Returns:
        ``noise``: white Gaussian noise, float32 (3, TILE, TILE);
        ``blotch``: smooth unit-variance noise, float32 (TILE, TILE);
        ``fine``: slightly smoothed unit-variance noise (skin, stubble), float32 (TILE, TILE);
        ``strand_profile``: hair brightness across 4096 strands, 8 samples each,
        float32 (32768,).
    """
    rng = np.random.default_rng(20250101)
    noise = rng.standard_normal((3, TILE, TILE)).astype(np.float32)
    blotch = _smooth(rng.standard_normal((TILE, TILE)), 12)
    blotch = (blotch - blotch.mean()) / blotch.std()
    fine = _smooth(rng.standard_normal((TILE, TILE)), 1)
    fine = (fine - fine.mean()) / fine.std()
    strand = rng.random(4096)
    # Eight samples per strand: bright along its middle, dark between strands.
    frac = (np.arange(8) + 0.5) / 8.0
    profile = 0.62 + 0.55 * strand[:, None] * (1.0 - (2.0 * frac[None, :] - 1.0) ** 2)
    return {
        "noise": noise,
        "blotch": blotch.astype(np.float32),
        "fine": fine.astype(np.float32),
        "strand_profile": profile.reshape(-1).astype(np.float32),
    }
