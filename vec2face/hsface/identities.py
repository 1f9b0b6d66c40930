"""Identity vectors: sampled vectors that are pairwise far apart.

Candidates come from one of two samplers and are kept greedily, in order: a candidate
is kept when its cosine similarity to every vector kept before it is below the
threshold (0.3 in the paper). The result is exactly what the plain sequential loop
would give; the work is done in blocks so that 300K identities never need an N x N
matrix:

* a block of candidates is compared with the kept vectors chunk by chunk (float32
  BLAS on unit vectors, one reusable buffer), dropping a candidate at its first hit;
* the survivors of a block are then compared with each other, and conflicts inside
  the block are resolved in candidate order, as the sequential loop would.

Decisions are those of float64 arithmetic on the returned float32 vectors: a float32
cosine that lies within ``_GUARD`` of the threshold (far more than float32 rounding on
unit vectors in 512-d can move it) is recomputed in float64. So every pair of returned
vectors has a float64 cosine strictly below the threshold.

Determinism: candidates are drawn in fixed chunks of ``_DRAW_ROWS`` rows, each from its
own generator seeded by ``(sampler, seed, chunk index)``. The candidate stream therefore
does not depend on ``batch``, and since decisions are exact the output has the same
bytes for every ``batch`` (on one machine and BLAS build).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from tqdm import tqdm

from vec2face.config import StepConfig
from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.utils.io import atomic_path, read_npy
from vec2face.utils.seeding import rng_for

SAMPLERS = ("pca", "gaussian")
Sampler = Literal["pca", "gaussian"]

# Rows per seeded draw: fixes the candidate stream whatever the processing batch.
_DRAW_ROWS = 4096
# float32 cosines of unit 512-d vectors are off by < 3e-5 in the worst case; within
# this band of the threshold a decision is remade in float64.
_GUARD = 1e-4
# Kept vectors compared per matrix product; with the default batch the product buffer
# is 4096 x 8192 float32 = 128 MiB.
_KEPT_CHUNK = 8192
# PCA axes with less variance than this share of the largest are rounding noise of a
# rank-deficient reference (a standard deviation ratio of 1e-5).
_RANK_TOL = 1e-10


class IdentitiesConfig(StepConfig):
    """The identity-vector step: how many vectors, how far apart, from which sampler."""

    n: int = Field(10_000, gt=0, description="number of identity vectors to sample")
    dim: int = Field(512, gt=0, description="vector dimension (the FR feature size)")
    threshold: float = Field(
        0.3, gt=-1.0, le=1.0,
        description="every pair of kept vectors has cosine similarity strictly below this")
    sampler: Sampler = Field(
        "pca", description="'pca': Gaussian in the PCA space of reference identity centers "
        "(the paper's); 'gaussian': standard normal vectors")
    reference: str | None = Field(
        None, description="(m, dim) float .npy of reference identity centers (pca sampler)")
    seed: int = Field(0, description="seed of the candidate stream")
    batch: int = Field(4096, gt=0, description="candidates checked per block (speed/memory only)")
    max_candidates: int | None = Field(
        None, gt=0, description="candidate budget before giving up (default 20*n + 10000)")


@dataclass(frozen=True)
class PCAPrior:
    """A Gaussian fitted in the PCA space of reference identity centers.

    Attributes:
        mean: (dim,) mean of the reference rows.
        components: (k, dim) orthonormal principal axes, k = rank of the centred rows.
        coord_mean: (k,) mean of the reference's PCA coordinates (zero up to rounding).
        coord_factor: (k, k) ``F`` with ``F @ F.T`` = covariance of the PCA coordinates.
    """

    mean: np.ndarray
    components: np.ndarray
    coord_mean: np.ndarray
    coord_factor: np.ndarray

    @property
    def rank(self) -> int:
        """Number of principal axes kept (dimension of the space samples vary in)."""
        return int(self.components.shape[0])

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Draw ``count`` vectors: float32 (count, dim)."""
        z = rng.standard_normal((count, self.rank))
        coords = self.coord_mean + z @ self.coord_factor.T
        return (self.mean + coords @ self.components).astype(np.float32)


@dataclass(frozen=True)
class SamplingInfo:
    """How a sampling run went.

    Attributes:
        accepted: vectors returned.
        candidates: candidates examined, up to and including the last one kept.
        acceptance_rate: accepted / candidates.
        seconds: wall time of the run.
        sampler: the sampler used.
        threshold: the cosine threshold.
        pca_rank: number of PCA axes of the prior (None for the gaussian sampler).
    """

    accepted: int
    candidates: int
    acceptance_rate: float
    seconds: float
    sampler: str
    threshold: float
    pca_rank: int | None = None

    def as_dict(self) -> dict:
        """The fields as a plain dict (for JSON summaries and tracking)."""
        return asdict(self)


def load_reference(reference: np.ndarray | str | Path, dim: int) -> np.ndarray:
    """Read and check reference identity centers: float64 (m, dim), finite, m >= 2.

    Args:
        reference: an (m, dim) array or the path of a ``.npy`` file holding one.
        dim: the expected vector dimension.

    Raises:
        ConfigError: missing file, wrong shape or dimension, NaN/inf, fewer than 2 rows.
    """
    name = "reference"
    if isinstance(reference, (str, Path)):
        name = f"reference {reference}"
        reference = read_npy(reference, "reference file")
    arr = np.asarray(reference)
    if arr.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D (m, {dim}) array, got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise ConfigError(f"{name}: has dimension {arr.shape[1]}, expected dim={dim}")
    if arr.shape[0] < 2:
        raise ConfigError(f"{name}: needs at least 2 rows to fit a PCA, got {arr.shape[0]}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ConfigError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ConfigError(f"{name}: {int(bad.sum())} rows hold NaN or inf "
                          f"(first: row {int(np.argmax(bad))})")
    return arr


def fit_pca_prior(reference: np.ndarray | str | Path, dim: int = 512) -> PCAPrior:
    """Fit the paper's identity prior: a Gaussian over the PCA coordinates of the centers.

    The PCA keeps every axis whose variance exceeds ``_RANK_TOL`` of the largest, up to
    ``dim`` (the paper's PCA(512) on MS1MV2's 85K centers keeps all 512). With
    ``m <= dim`` reference rows the centred rows span at most ``m - 1`` axes, so only
    those are kept: samples then vary only in the affine hull of the reference, since
    nothing in the data says how they should vary outside it (padding with invented
    variance would change the distribution). The axes come from an eigendecomposition
    of the (dim, dim) covariance rather than an SVD of the (m, dim) rows: the same axes,
    and seconds instead of minutes for 85K rows. The covariance of the coordinates is
    then the full sample covariance; PCA coordinates are uncorrelated, so it is diagonal
    up to rounding, and it is factored by eigendecomposition, which tolerates its tiny
    negative rounding eigenvalues.

    Args:
        reference: (m, dim) identity centers, or the path of a ``.npy`` holding them.
        dim: the vector dimension.

    Raises:
        ConfigError: a bad reference (see :func:`load_reference`) or one without variance.
    """
    ref = load_reference(reference, dim)
    mean = ref.mean(axis=0)
    centred = ref - mean
    var, axes = np.linalg.eigh(centred.T @ centred / (ref.shape[0] - 1))
    if var[-1] <= 0:
        raise ConfigError("reference: all rows are identical, no variance to fit a PCA on")
    keep = var > var[-1] * _RANK_TOL
    components = axes[:, keep][:, ::-1].T  # largest variance first
    coords = centred @ components.T
    coord_mean = coords.mean(axis=0)
    dev = coords - coord_mean
    cov = dev.T @ dev / (ref.shape[0] - 1)
    w, v = np.linalg.eigh(cov)
    return PCAPrior(mean=mean, components=components, coord_mean=coord_mean,
                    coord_factor=v * np.sqrt(np.clip(w, 0.0, None)))


class _CandidateStream:
    """Candidates in a fixed order, drawn chunk by chunk from per-chunk seeds."""

    def __init__(self, sampler: str, dim: int, seed: int, prior: PCAPrior | None):
        self._sampler, self._dim, self._seed, self._prior = sampler, dim, seed, prior
        self._chunk = 0
        self._buf = np.empty((0, dim), dtype=np.float32)

    def _draw(self) -> np.ndarray:
        rng = rng_for("identities", self._sampler, self._seed, self._chunk)
        self._chunk += 1
        if self._prior is not None:
            return self._prior.sample(rng, _DRAW_ROWS)
        return rng.standard_normal((_DRAW_ROWS, self._dim), dtype=np.float32)

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` candidates: float32 (count, dim)."""
        parts, need = [], count
        while need > 0:
            if len(self._buf) == 0:
                self._buf = self._draw()
            parts.append(self._buf[:need])
            self._buf = self._buf[need:]
            need -= len(parts[-1])
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)


def _check_args(n: int, dim: int, threshold: float, sampler: str, batch: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ConfigError(f"identities.n must be a positive integer, got {n!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise ConfigError(f"identities.dim must be a positive integer, got {dim!r}")
    if not (isinstance(threshold, (int, float, np.floating)) and -1.0 < float(threshold) <= 1.0):
        raise ConfigError(f"identities.threshold must be in (-1, 1], got {threshold!r}")
    if sampler not in SAMPLERS:
        raise ConfigError(
            f"identities.sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch <= 0:
        raise ConfigError(f"identities.batch must be a positive integer, got {batch!r}")


def _make_stream(
    dim: int, sampler: str, reference, seed: int
) -> tuple[_CandidateStream, PCAPrior | None]:
    prior = None
    if sampler == "pca":
        if reference is None:
            raise ConfigError("identities.reference: sampler 'pca' needs reference identity "
                              "centers (an (m, dim) .npy); pass one or use sampler 'gaussian'")
        prior = fit_pca_prior(reference, dim)
    elif reference is not None:
        raise ConfigError("identities.reference: given, but sampler 'gaussian' does not use one")
    return _CandidateStream(sampler, dim, int(seed), prior), prior


def draw_candidates(
    count: int, dim: int = 512, sampler: str = "pca", reference=None, seed: int = 0
) -> np.ndarray:
    """The first ``count`` candidates :func:`sample_identities` examines for these settings.

    Returns:
        float32 (count, dim), in the order the greedy rejection visits them.
    """
    _check_args(count, dim, 0.0, sampler, 1)
    stream, _ = _make_stream(dim, sampler, reference, seed)
    return stream.take(count)


def _unit_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm float32 copies of ``x`` (n, d) and a mask of rows that have a direction."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    ok = np.isfinite(norms) & (norms > 0)
    unit = (x / np.where(ok, norms, 1.0)[:, None]).astype(np.float32)
    return unit, ok


def _cos64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float64 cosines between rows of ``a`` and ``b`` (same shape (k, d)): (k,)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    return np.einsum("ij,ij->i", a, b) / norms


def _rows_hitting(
    sims: np.ndarray, cand: np.ndarray, kept: np.ndarray, threshold: float
) -> np.ndarray:
    """Which candidates have a cosine >= threshold with some kept vector.

    Args:
        sims: (c, k) float32 cosines of candidates vs kept vectors.
        cand: (c, d) the candidates' raw vectors; kept: (k, d) the kept raw vectors.

    Returns:
        bool (c,), decided in float64 wherever float32 is too close to call.
    """
    top = sims.max(axis=1)
    hit = top >= threshold + _GUARD
    for r in np.flatnonzero(~hit & (top > threshold - _GUARD)):
        cols = np.flatnonzero(sims[r] > threshold - _GUARD)
        hit[r] = bool((_cos64(np.broadcast_to(cand[r], (cols.size, cand.shape[1])), kept[cols])
                       >= threshold).any())
    return hit


def _greedy_within(raw: np.ndarray, unit: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy, in order, among one block's candidates: positions kept (sorted).

    Args:
        raw: (c, d) raw candidates, unit: (c, d) their unit vectors, all with a direction
            and already clear of the previously kept vectors.
    """
    c = len(raw)
    if c <= 1:
        return np.arange(c)
    gram = unit @ unit.T
    # maybe[j, i], i < j: the pair may conflict; most candidates have no such i at all
    maybe = np.tril(gram > threshold - _GUARD, -1)
    alive = np.ones(c, dtype=bool)
    for j in np.flatnonzero(maybe.any(axis=1)):
        # earlier candidates are already decided, as in the sequential loop
        prev = np.flatnonzero(maybe[j, :j] & alive[:j])
        if prev.size == 0:
            continue
        if (gram[j, prev] >= threshold + _GUARD).any():
            alive[j] = False
        else:
            near = _cos64(raw[prev], np.broadcast_to(raw[j], (prev.size, raw.shape[1])))
            alive[j] = not (near >= threshold).any()
    return np.flatnonzero(alive)


def sample_identities(
    n: int,
    dim: int = 512,
    threshold: float = 0.3,
    sampler: str = "pca",
    reference: np.ndarray | str | Path | None = None,
    seed: int = 0,
    batch: int = 4096,
    max_candidates: int | None = None,
    progress: bool = False,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, SamplingInfo]:
    """Sample ``n`` identity vectors whose pairwise cosine similarities are all < ``threshold``.

    Candidates are drawn from ``sampler`` and kept greedily in order (see the module
    docstring); the result equals the sequential loop over :func:`draw_candidates`
    and has the same bytes for any ``batch``. Vectors are returned unnormalised (the
    sampler's own scale), since the generator takes raw feature vectors.

    Args:
        n: number of vectors.
        dim: vector dimension.
        threshold: cosine bound in (-1, 1]; kept pairs are strictly below it.
        sampler: ``"pca"`` (the paper's; needs ``reference``) or ``"gaussian"``.
        reference: (m, dim) reference identity centers or a ``.npy`` path (pca only).
        seed: seed of the candidate stream.
        batch: candidates checked per block; affects speed and memory only.
        max_candidates: give up after this many candidates (default ``20 * n + 10000``).
        progress: show a progress bar of kept vectors.
        return_info: also return a :class:`SamplingInfo`.

    Returns:
        float32 (n, dim) vectors, or ``(vectors, info)`` with ``return_info``.

    Raises:
        ConfigError: an invalid argument or reference (the message names it).
        Vec2FaceError: the budget ran out; the message says how many were reached.
    """
    _check_args(n, dim, threshold, sampler, batch)
    n, dim, batch, threshold = int(n), int(dim), int(batch), float(threshold)
    budget = 20 * n + 10_000 if max_candidates is None else int(max_candidates)
    if budget <= 0:
        raise ConfigError(f"identities.max_candidates must be positive, got {max_candidates!r}")
    start_time = time.perf_counter()
    stream, prior = _make_stream(dim, sampler, reference, seed)

    out = np.empty((n, dim), dtype=np.float32)
    unit = np.empty((n, dim), dtype=np.float32)
    prod = np.empty(min(batch, budget) * min(_KEPT_CHUNK, n), dtype=np.float32)
    kept = used = 0
    bar = tqdm(total=n, unit="id", desc=f"identities {sampler} <{threshold}", disable=not progress)
    while kept < n:
        if used >= budget:
            bar.close()
            raise Vec2FaceError(
                f"identity sampling reached {kept} of {n} vectors within max_candidates={budget} "
                f"(sampler {sampler}, threshold {threshold}); raise the threshold or the budget, "
                "or lower n")
        # Near the end, a block only as large as the acceptance rate so far suggests.
        rate = kept / used if kept else 1.0
        count = min(batch, budget - used, int((n - kept) / rate * 1.1) + 64)
        raw = stream.take(count)
        block_unit, ok = _unit_rows(raw)
        idx = np.flatnonzero(ok)
        sub_raw, sub_unit = raw[idx], block_unit[idx]
        for k0 in range(0, kept, _KEPT_CHUNK):
            if idx.size == 0:
                break
            k1 = min(kept, k0 + _KEPT_CHUNK)
            sims = prod[: idx.size * (k1 - k0)].reshape(idx.size, k1 - k0)
            np.matmul(sub_unit, unit[k0:k1].T, out=sims)
            hit = _rows_hitting(sims, sub_raw, out[k0:k1], threshold)
            if hit.any():
                idx, sub_raw, sub_unit = idx[~hit], sub_raw[~hit], sub_unit[~hit]
        take = idx[_greedy_within(sub_raw, sub_unit, threshold)][: n - kept]
        out[kept:kept + take.size] = raw[take]
        unit[kept:kept + take.size] = block_unit[take]
        kept += take.size
        bar.update(take.size)
        used += int(take[-1]) + 1 if kept == n else count
    bar.close()
    if not return_info:
        return out
    info = SamplingInfo(accepted=n, candidates=used, acceptance_rate=n / used,
                        seconds=time.perf_counter() - start_time, sampler=sampler,
                        threshold=threshold, pca_rank=None if prior is None else prior.rank)
    return out, info


def max_pairwise_cosine(vectors: np.ndarray, sample: int = 1000, seed: int = 0) -> float | None:
    """Largest cosine between a random sample of rows and every other row (a spot check).

    Float32 products find each sampled row's nearest other row; that pair's cosine is
    then recomputed in float64. With ``sample >= n`` the check is exhaustive.

    Args:
        vectors: (n, d) vectors.
        sample: rows to check against all others.
        seed: seed of the row sample.

    Returns:
        The largest float64 cosine found, or None when there are fewer than 2 rows.
    """
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 2:
        return None
    rng = rng_for("max_pairwise_cosine", seed)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    unit, _ = _unit_rows(x)
    best = np.full(rows.size, -np.inf, dtype=np.float32)
    arg = np.zeros(rows.size, dtype=np.int64)
    for k0 in range(0, n, _KEPT_CHUNK):
        k1 = min(n, k0 + _KEPT_CHUNK)
        sims = unit[rows] @ unit[k0:k1].T
        own = (rows >= k0) & (rows < k1)
        sims[np.flatnonzero(own), rows[own] - k0] = -np.inf
        col = sims.argmax(axis=1)
        val = sims[np.arange(rows.size), col]
        better = val > best
        best[better], arg[better] = val[better], col[better] + k0
    return float(_cos64(x[rows], x[arg]).max())


def save_identities(vectors: np.ndarray, path: str | Path) -> Path:
    """Write identity vectors as a float32 (n, dim) ``.npy``, atomically.

    Raises:
        Vec2FaceError: ``vectors`` is not a finite 2-D array.
    """
    arr = np.asarray(vectors)
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise Vec2FaceError(f"identity vectors must be a finite 2-D array, got shape {arr.shape}")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr.astype(np.float32, copy=False))
    return path


def make_identities(config: IdentitiesConfig, out: str | Path, progress: bool = False) -> dict:
    """Run the identity-vector step: sample, save to ``out`` and summarise.

    Args:
        config: the step's settings.
        out: output ``.npy`` path.
        progress: show a progress bar.

    Returns:
        A JSON-ready summary: settings, acceptance rate, candidates, a sampled
        max pairwise cosine, seconds and the output path.
    """
    vectors, info = sample_identities(
        config.n, dim=config.dim, threshold=config.threshold, sampler=config.sampler,
        reference=config.reference, seed=config.seed, batch=config.batch,
        max_candidates=config.max_candidates, progress=progress, return_info=True)
    path = save_identities(vectors, out)
    return {
        "n": config.n, "dim": config.dim, "threshold": config.threshold,
        "sampler": config.sampler, "seed": config.seed,
        "acceptance_rate": info.acceptance_rate, "candidates": info.candidates,
        "pca_rank": info.pca_rank,
        "max_pairwise_cosine_sampled": max_pairwise_cosine(vectors, seed=config.seed),
        "seconds": round(info.seconds, 3), "out": str(path),
    }
