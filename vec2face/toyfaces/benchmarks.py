"""The five toy verification benchmarks, written as insightface ``.bin`` files.

Each set mirrors its real namesake's stress factor:

- ``lfw``: general pairs, default nuisance, random impostors;
- ``cfp_fp``: one frontal (|yaw| < 10) and one profile (|yaw| > 60) image per pair;
- ``agedb_30``: an age gap of about 30 years in every pair;
- ``calfw``: cross-age pairs, impostors drawn among the most similar-looking identities;
- ``cplfw``: cross-pose pairs, impostors drawn among the most similar-looking identities.

Pairs are laid out as insightface's 10 folds in order: each fold holds ``pairs/20``
genuine pairs followed by as many impostor pairs, like LFW's ``pairs.txt``. Beside each
``.bin`` a ``<name>_pairs.parquet`` records the ground truth of every image.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, model_validator
from tqdm import tqdm

from vec2face.config import StepConfig
from vec2face.data import write_bin
from vec2face.toyfaces.identity import identity_lookalike_features
from vec2face.toyfaces.nuisance import NUISANCE_FIELDS, sample_nuisance
from vec2face.toyfaces.pools import BENCHMARK_POOLS, pool_identity_params
from vec2face.toyfaces.world import render_jpegs
from vec2face.utils.io import atomic_path, write_bytes_atomic
from vec2face.utils.paths import path_in_folder, resolve_recorded
from vec2face.utils.seeding import rng_for

_YAW = NUISANCE_FIELDS.index("yaw")
_AGE = NUISANCE_FIELDS.index("age")


class BenchmarksConfig(StepConfig):
    """The toy benchmark sets."""

    pairs: int = Field(6000, gt=0, description="pairs per set (half genuine), a multiple of 2 x folds")
    identities: int = Field(1500, ge=20, description="identities in each benchmark pool")
    lookalike_k: int = Field(3, ge=1, description="impostors of calfw/cplfw: one of the k most similar identities")
    folds: int = Field(10, ge=2, description="folds of the protocol (pairs are laid out fold by fold)")
    seed: int = Field(0, description="world seed (the same as the pools')")
    sets: tuple[str, ...] = Field(BENCHMARK_POOLS, description="which benchmark sets to write")
    workers: int = Field(0, ge=0, description="worker processes (0: one per CPU core)")

    @model_validator(mode="after")
    def _pairs_fill_folds(self) -> BenchmarksConfig:
        if self.pairs % (2 * self.folds):
            raise ValueError(f"pairs ({self.pairs}) must split into {self.folds} folds of equal "
                             "genuine and impostor halves")
        return self


def _pair_plan(name: str, cfg: BenchmarksConfig) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Choose identities and nuisance for every image of a set.

    Returns:
        ids: int (2P,) identity of each image; nuis: float32 (2P, Q); issame: P bools.
    """
    rng = rng_for("benchmarks", name, cfg.seed, "plan")
    n_ids, per_fold = cfg.identities, cfg.pairs // cfg.folds
    n_gen = per_fold // 2
    issame = ([True] * n_gen + [False] * (per_fold - n_gen)) * cfg.folds
    p = len(issame)
    same = np.asarray(issame)

    a = rng.integers(0, n_ids, p)
    if name in ("calfw", "cplfw"):
        feats = identity_lookalike_features(pool_identity_params(name, range(n_ids), cfg.seed))
        sq = (feats ** 2).sum(1)
        d = sq[:, None] + sq[None, :] - 2 * feats @ feats.T
        np.fill_diagonal(d, np.inf)
        nearest = np.argsort(d, axis=1)[:, :cfg.lookalike_k]
        b_imp = nearest[a, rng.integers(0, cfg.lookalike_k, p)]
    else:
        b_imp = (a + rng.integers(1, n_ids, p)) % n_ids  # any other identity
    b = np.where(same, a, b_imp)

    nuis = sample_nuisance(2 * p, rng)
    yaw, age = nuis[:, _YAW].copy(), nuis[:, _AGE].copy()
    sign = rng.choice([-1.0, 1.0], p)
    first = rng.random(p) < 0.5  # which image of the pair gets the frontal / younger role
    if name == "cfp_fp":
        frontal = rng.uniform(-10, 10, p)
        profile = sign * rng.uniform(60, 75, p)
        yaw[0::2], yaw[1::2] = np.where(first, frontal, profile), np.where(first, profile, frontal)
    elif name == "cplfw":
        near = rng.uniform(-20, 20, p)
        far = sign * rng.uniform(40, 75, p)
        yaw[0::2], yaw[1::2] = np.where(first, near, far), np.where(first, far, near)
    if name in ("agedb_30", "calfw"):
        gap = rng.normal(30, 2, p) if name == "agedb_30" else rng.uniform(20, 45, p)
        young = rng.uniform(18, 80 - gap)
        old = young + gap
        age[0::2], age[1::2] = np.where(first, young, old), np.where(first, old, young)
    nuis[:, _YAW], nuis[:, _AGE] = yaw, age
    ids = np.stack([a, b], 1).reshape(-1)
    return ids, nuis, issame


def _render_slice(args: tuple[str, int, np.ndarray, np.ndarray]) -> list[bytes]:
    name, seed, ids, nuis = args
    uniq, inv = np.unique(ids, return_inverse=True)
    params = pool_identity_params(name, uniq, seed)[inv]
    return render_jpegs(params, nuis)


def make_benchmarks(config: BenchmarksConfig, out: str | Path, progress: bool = True) -> dict:
    """Write ``<name>.bin`` and ``<name>_pairs.parquet`` for each set into ``out``.

    Returns:
        ``{name: {"pairs", "genuine", "identities", "path"}}``. ``benchmarks.json`` holds the
        same with each ``path`` relative to ``out``; here it is the ``.bin`` under ``out``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = config.model_dump(mode="json", exclude={"workers"})
    done = out / "benchmarks.json"
    if done.exists():
        prev = json.loads(done.read_text())
        sets = _resolved(prev["sets"], out)
        if prev.get("config") == stamp and all(Path(v["path"]).exists() for v in sets.values()):
            return sets  # already written with these settings
    unknown = set(config.sets) - set(BENCHMARK_POOLS)
    if unknown:
        raise ValueError(f"unknown benchmark set(s) {sorted(unknown)}; known: {', '.join(BENCHMARK_POOLS)}")
    workers = config.workers or os.cpu_count() or 1
    summary: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for name in config.sets:
            ids, nuis, issame = _pair_plan(name, config)
            step = 256
            jobs = [(name, config.seed, ids[s:s + step], nuis[s:s + step]) for s in range(0, len(ids), step)]
            images: list[bytes] = []
            with tqdm(total=len(ids), unit="img", desc=f"benchmark {name}", disable=not progress) as bar:
                for part in ex.map(_render_slice, jobs):
                    images.extend(part)
                    bar.update(len(part))
            write_bin(images, issame, out / f"{name}.bin")
            table = pd.DataFrame(nuis, columns=list(NUISANCE_FIELDS))
            table.insert(0, "identity", ids)
            table.insert(0, "issame", np.repeat(issame, 2))
            table.insert(0, "pair", np.arange(len(ids)) // 2)
            with atomic_path(out / f"{name}_pairs.parquet") as tmp:
                table.to_parquet(tmp, index=False)
            summary[name] = {"pairs": len(issame), "genuine": int(sum(issame)),
                             "identities": int(len(np.unique(ids))),
                             "path": path_in_folder(out / f"{name}.bin", out)}
    write_bytes_atomic(done, json.dumps({"config": stamp, "sets": summary}, indent=2).encode())
    return _resolved(summary, out)


def _resolved(sets: dict[str, dict], out: Path) -> dict[str, dict]:
    """``benchmarks.json``'s sets with each recorded path resolved against ``out``."""
    return {
        name: {**info, "path": str(resolve_recorded(info["path"], out))}
        for name, info in sets.items()
    }
