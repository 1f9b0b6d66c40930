"""Identity pools of the toy world and the seeds that keep them disjoint.

Each pool plays one role of the paper's real data. An identity is fully
determined by ``(pool, seed, index)``: its parameters come from a random stream derived
from those three values, so pools never share a stream, and the first ``n`` identities
of a pool are the same whatever size of pool is asked for.
"""

from __future__ import annotations

import numpy as np

from vec2face.toyfaces.identity import IDENTITY_FIELDS, sample_identity_params
from vec2face.utils.seeding import rng_for

#: pool name -> the real data it stands for
POOLS: dict[str, str] = {
    "teacher": "Glint360K (trains the feature extractor)",
    "judge": "a second, independent FR model's training data",
    "perceptual": "ImageNet (trains the perceptual trunk of the generator's LPIPS-style term)",
    "webface": "WebFace4M 50K-identity subset (trains Vec2Face)",
    "pca": "MS1MV2 identity centers (PCA space for identity sampling)",
    "lfw": "LFW (general verification)",
    "cfp_fp": "CFP-FP (frontal vs profile)",
    "agedb_30": "AgeDB-30 (30-year age gaps)",
    "calfw": "CALFW (cross-age, look-alike impostors)",
    "cplfw": "CPLFW (cross-pose, look-alike impostors)",
}

BENCHMARK_POOLS: tuple[str, ...] = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw")


def check_pool(pool: str) -> str:
    """Return ``pool`` or raise ValueError listing the known pools."""
    if pool not in POOLS:
        raise ValueError(f"unknown toy pool '{pool}'; known: {', '.join(POOLS)}")
    return pool


def pool_identity_params(pool: str, indices: np.ndarray | range, seed: int) -> np.ndarray:
    """Identity parameters of the given identities of a pool.

    Args:
        pool: a name from :data:`POOLS`.
        indices: identity indices within the pool.
        seed: the world seed; another seed gives another, disjoint set of people.

    Returns:
        float32 (len(indices), len(IDENTITY_FIELDS)).
    """
    check_pool(pool)
    rows = [sample_identity_params(1, rng_for("toyfaces", pool, seed, "identity", int(i)))[0]
            for i in indices]
    if not rows:
        return np.zeros((0, len(IDENTITY_FIELDS)), np.float32)
    return np.stack(rows).astype(np.float32)
