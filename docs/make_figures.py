"""Render the README's figures of the toy world (deterministic).

    python docs/make_figures.py            # writes docs/toyfaces_grid.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vec2face.toyfaces.nuisance import NUISANCE_FIELDS, sample_nuisance
from vec2face.toyfaces.pools import pool_identity_params
from vec2face.toyfaces.render import render_faces
from vec2face.toyfaces.world import preview_grid
from vec2face.utils.seeding import rng_for

# columns: (yaw, pitch, age, smile) — a frontal reference, turns both ways, a profile,
# pitch, a smile, and the same person 30 and 55 years older
COLUMNS = [(0, 0, 25, 0.0), (-30, 0, 25, 0.0), (45, 0, 25, 0.0), (-75, 0, 25, 0.0),
           (0, 20, 25, 0.0), (15, -10, 25, 0.9), (0, 0, 55, 0.0), (-20, 0, 80, 0.3)]


def toyfaces_grid(identities: int = 6, seed: int = 0) -> np.ndarray:
    """uint8 grid: one identity per row across the poses/ages of :data:`COLUMNS`."""
    params = pool_identity_params("lfw", range(identities), seed)
    rows = []
    for i in range(identities):
        n = sample_nuisance(len(COLUMNS), rng_for("docs", seed, i))
        n[:, NUISANCE_FIELDS.index("blur")] = 0.0
        n[:, NUISANCE_FIELDS.index("occluder")] = 0.0
        for c, (yaw, pitch, age, smile) in enumerate(COLUMNS):
            for f, v in (("yaw", yaw), ("pitch", pitch), ("age", age), ("expression", smile)):
                n[c, NUISANCE_FIELDS.index(f)] = v
        rows.extend(render_faces(np.repeat(params[i:i + 1], len(COLUMNS), 0), n))
    return preview_grid(rows, len(COLUMNS))


if __name__ == "__main__":
    out = Path(__file__).with_name("toyfaces_grid.png")
    Image.fromarray(toyfaces_grid()).save(out, optimize=True)
    print(out, out.stat().st_size // 1024, "KiB")
