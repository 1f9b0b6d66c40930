"""Write a pool of the toy world as a dataset: image folders + a ground-truth manifest.

Output layout (opens with :func:`vec2face.data.open_dataset`)::

    <out>/<identity:05d>/<image:03d>.jpg   one folder per identity
    <out>/manifest.parquet                 one row per image: identity, every nuisance value
    <out>/identities.parquet               one row per identity: its identity parameters
    <out>/preview.png                      a grid of the first identities (rows) x images
    <out>/world.json                       the config and counts

Work is split into chunks of identities rendered by worker processes. Each finished
chunk leaves its manifest part in ``<out>.partial/``, so a killed run resumes where it
stopped; the folder is renamed to ``<out>`` only when every chunk is done. Every image
depends only on ``(pool, seed, identity, image index)``, never on chunking or workers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import Field
from tqdm import tqdm

from vec2face.config import StepConfig
from vec2face.toyfaces.identity import IDENTITY_FIELDS
from vec2face.toyfaces.nuisance import NUISANCE_FIELDS, sample_nuisance
from vec2face.toyfaces.pools import POOLS, check_pool, pool_identity_params
from vec2face.toyfaces.render import render_faces
from vec2face.utils.io import atomic_path, write_bytes_atomic
from vec2face.utils.seeding import rng_for

PoolName = Literal[tuple(POOLS)]  # type: ignore[valid-type]

_JPEG_Q = NUISANCE_FIELDS.index("jpeg_quality")


class ToyfacesConfig(StepConfig):
    """One pool of the procedural face world."""

    pool: PoolName = Field("webface", description="identity pool (its role: see vec2face.toyfaces.pools.POOLS)")
    identities: int = Field(200, gt=0, description="number of identities")
    images: int = Field(20, gt=0, description="images per identity")
    seed: int = Field(0, description="world seed; another seed gives disjoint identities")
    workers: int = Field(0, ge=0, description="worker processes (0: one per CPU core)")
    chunk_identities: int = Field(
        0, ge=0, description="identities per work chunk (0: about 128 images a chunk)")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a uint8 (H, W, 3) RGB image (4:2:0, libjpeg-turbo through Pillow)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def nuisance_for(pool: str, seed: int, identity: int, n: int) -> np.ndarray:
    """The nuisance rows of an identity's ``n`` images: float32 (n, len(NUISANCE_FIELDS))."""
    return sample_nuisance(n, rng_for("toyfaces", pool, seed, "nuisance", identity))


def render_jpegs(identity: np.ndarray, nuisance: np.ndarray, batch: int = 64) -> list[bytes]:
    """Render and JPEG-encode rows in batches; each image at its own ``jpeg_quality``."""
    out: list[bytes] = []
    for s in range(0, len(identity), batch):
        imgs = render_faces(identity[s:s + batch], nuisance[s:s + batch])
        out.extend(encode_jpeg(im, q) for im, q in zip(imgs, nuisance[s:s + batch, _JPEG_Q]))
    return out


def _render_chunk(args: tuple[str, int, int, int, int, str]) -> str:
    """Worker: render identities [start, stop) into ``root`` and write the chunk manifest."""
    pool, seed, start, stop, images, root = args
    root_p = Path(root)
    ids = np.arange(start, stop)
    params = pool_identity_params(pool, ids, seed)
    nuis = np.concatenate([nuisance_for(pool, seed, int(i), images) for i in ids])
    ident = np.repeat(params, images, axis=0)
    jpegs = render_jpegs(ident, nuis)
    rows = []
    for k, data in enumerate(jpegs):
        i, j = int(ids[k // images]), k % images
        rel = f"{i:05d}/{j:03d}.jpg"
        (root_p / f"{i:05d}").mkdir(exist_ok=True)
        (root_p / rel).write_bytes(data)
        rows.append((rel, i, j))
    df = pd.DataFrame(rows, columns=["path", "identity", "image_index"])
    for c, name in enumerate(NUISANCE_FIELDS):
        df[name] = nuis[:, c]
    part = root_p / ".parts" / f"{start:07d}.parquet"
    with atomic_path(part) as tmp:
        df.to_parquet(tmp, index=False)
    return str(part)


def preview_grid(images: list[np.ndarray], cols: int, scale: int = 1) -> np.ndarray:
    """Tile equally sized uint8 (H, W, 3) images row by row into one uint8 image."""
    h, w = images[0].shape[:2]
    rows = (len(images) + cols - 1) // cols
    grid = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2, 3), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        grid[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + c * (w + 2):2 + c * (w + 2) + w] = im
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid


def make_toyfaces(config: ToyfacesConfig, out: str | Path, progress: bool = True) -> dict:
    """Render a pool of the toy world into ``out`` (resumable; see the module docstring).

    Args:
        config: pool, sizes, seed and parallelism.
        out: output folder; replaced when the run completes.
        progress: show a progress bar.

    Returns:
        A summary dict: ``world.json``'s content plus ``path`` (``out``). The file itself
        names no path, so it is the same wherever ``out`` is.
    """
    check_pool(config.pool)
    out = Path(out)
    stamp = config.model_dump(exclude={"workers"})
    done = out / "world.json"
    if done.exists() and json.loads(done.read_text()).get("config") == stamp:
        # already rendered with these settings (a file from before holds its own "path")
        return {**json.loads(done.read_text()), "path": str(out)}
    partial = out.with_name(out.name + ".partial")
    stamp_file = partial / ".config.json"
    if partial.exists() and (not stamp_file.exists() or json.loads(stamp_file.read_text()) != stamp):
        shutil.rmtree(partial)  # left by a run with other settings: not resumable
    (partial / ".parts").mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(stamp_file, json.dumps(stamp).encode())

    n, m = config.identities, config.images
    per_chunk = config.chunk_identities or max(1, 128 // m)
    chunks = [(s, min(n, s + per_chunk)) for s in range(0, n, per_chunk)]
    todo = [(config.pool, config.seed, s, e, m, str(partial)) for s, e in chunks
            if not (partial / ".parts" / f"{s:07d}.parquet").exists()]
    workers = config.workers or os.cpu_count() or 1
    bar = tqdm(total=n * m, initial=(len(chunks) - len(todo)) * per_chunk * m, unit="img",
               desc=f"toyfaces {config.pool}", disable=not progress, smoothing=0.1)
    if workers == 1 or len(todo) <= 1:
        for t in todo:
            _render_chunk(t)
            bar.update((t[3] - t[2]) * m)
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for t, _ in zip(todo, ex.map(_render_chunk, todo, chunksize=1)):
                bar.update((t[3] - t[2]) * m)
    bar.close()

    parts = sorted((partial / ".parts").glob("*.parquet"))
    manifest = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    manifest.insert(1, "label", manifest["identity"].astype(np.int64))
    manifest.insert(0, "pool", config.pool)
    manifest.to_parquet(partial / "manifest.parquet", index=False)
    ids = pd.DataFrame(pool_identity_params(config.pool, range(n), config.seed), columns=list(IDENTITY_FIELDS))
    ids.insert(0, "identity", np.arange(n))
    ids.to_parquet(partial / "identities.parquet", index=False)

    show_ids, show_imgs = min(n, 8), min(m, 8)
    thumbs = [np.asarray(Image.open(partial / f"{i:05d}/{j:03d}.jpg").convert("RGB"))
              for i in range(show_ids) for j in range(show_imgs)]
    Image.fromarray(preview_grid(thumbs, show_imgs)).save(partial / "preview.png")

    summary = {"pool": config.pool, "role": POOLS[config.pool], "identities": n,
               "images": n * m, "images_per_identity": m, "seed": config.seed,
               "image_size": [112, 112], "config": stamp}
    (partial / "world.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(partial / ".parts")
    stamp_file.unlink()
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return {**summary, "path": str(out)}
