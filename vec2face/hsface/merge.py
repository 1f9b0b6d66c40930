"""Join HSFace shards into one dataset, with prefix masks (HSFace100K/200K over 300K).

Output::

    <out>/train.lmdb            FR layout, records in identity order, keys 0..N-1
    <out>/vectors.npy           float32 (N, 512), record order
    <out>/manifest.parquet      the shards' manifests, ``record`` renumbered 0..N-1
    <out>/mask_<P>_ids.npy      int64 record indices of the first P identities
    <out>/merge.json            shards, counts and masks

Labels are the global identity indices the shards were written with, so a merged
record keeps its label and a prefix of identities is a prefix of records.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vec2face.data.lmdb_format import write_lmdb
from vec2face.errors import ConfigError, DataFormatError
from vec2face.hsface.writer import iter_fr_records, read_shard_info
from vec2face.utils.io import atomic_dir
from vec2face.utils.paths import path_in_folder

_SHARD_RE = re.compile(r"^shard_(\d{5,})$")
_TMP_RE = re.compile(r"^\.shard_(\d{5,})\.tmp$")


def find_shards(path: str | os.PathLike) -> list[Path]:
    """The shard folders of a dataset folder (``<out>``) or of its ``shards/`` folder.

    Raises:
        DataFormatError: no shard found, an incomplete shard (a temporary folder or a shard
            lacking files), or a gap in the shard numbering (the missing ones are named).
    """
    root = Path(path)
    if (root / "shards").is_dir():
        root = root / "shards"
    if not root.is_dir():
        raise DataFormatError(f"shards folder not found: {root}")
    shards = {int(m.group(1)): root / e for e in os.listdir(root) if (m := _SHARD_RE.match(e))}
    partial = sorted(root / e for e in os.listdir(root) if _TMP_RE.match(e))
    if not shards and not partial:
        raise DataFormatError(f"{root}: no shard_XXXXX folders")
    incomplete = [str(p) for p in partial]
    incomplete += [str(p) for _, p in sorted(shards.items()) if read_shard_info(p) is None]
    if incomplete:
        raise DataFormatError(
            f"incomplete shards (rerun the generation to finish them): {', '.join(incomplete)}"
        )
    summary = root.parent / "hsface.json"
    # without the summary (written once all shards exist) trailing missing shards are
    # caught by merge_shards' identity-range check only if a later shard exists
    expected = (
        len(json.loads(summary.read_text())["shards"]) if summary.is_file() else max(shards) + 1
    )
    missing = [f"shard_{k:05d}" for k in range(expected) if k not in shards]
    if missing:
        raise DataFormatError(f"{root}: missing shards {', '.join(missing)}")
    return [shards[k] for k in sorted(shards)]


def _check_contiguous(shard_dirs: Sequence[Path]) -> list[dict]:
    """Shard infos in identity order; the ranges must tile ``[0, N)``."""
    infos = []
    for d in shard_dirs:
        info = read_shard_info(d)
        if info is None:
            raise DataFormatError(f"incomplete or missing shard: {d}")
        infos.append((info, d))
    infos.sort(key=lambda x: x[0]["identity_start"])
    # the identity-rows hash differs per shard by construction; every other setting must agree
    stamps = {
        json.dumps(
            {k: v for k, v in i["stamp"].items() if k != "identity_vectors_sha256"}, sort_keys=True
        )
        for i, _ in infos
    }
    if len(stamps) > 1:
        raise DataFormatError(
            f"shards were made with different settings: {', '.join(str(d) for _, d in infos)}"
        )
    expected = 0
    for info, d in infos:
        if info["identity_start"] != expected:
            raise DataFormatError(
                f"identities {expected}..{info['identity_start'] - 1} are in no shard "
                f"(next shard: {d}); missing shards"
            )
        expected = info["identity_stop"]
    return [dict(i, path=str(d)) for i, d in infos]


def _records(infos: Iterable[dict]) -> Iterator[tuple[bytes, int]]:
    for info in infos:
        count = 0
        for image, label in iter_fr_records(Path(info["path"]) / "train.lmdb"):
            if not info["identity_start"] <= label < info["identity_stop"]:
                raise DataFormatError(
                    f"{info['path']}: label {label} outside the shard's identities "
                    f"{info['identity_start']}..{info['identity_stop'] - 1}"
                )
            count += 1
            yield image, label
        if count != info["images"]:
            raise DataFormatError(
                f"{info['path']}: LMDB holds {count} records, shard.json says {info['images']}"
            )


def merge_shards(
    shard_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    prefix_sizes: Sequence[int] = (),
    overwrite: bool = False,
) -> dict:
    """Join complete shards into one LMDB, vectors file and manifest, plus prefix masks.

    Args:
        shard_dirs: shard folders (any order; their identity ranges must tile ``[0, N)``).
        out: output folder; it appears only when complete.
        prefix_sizes: for each P, write ``mask_<P>_ids.npy`` selecting the records of
            identities ``0..P-1``.
        overwrite: replace an existing ``out``.

    Returns:
        Identities, images, shard folders and masks: the ``merge.json`` content, except
        that the file names the shards relative to ``out``.

    Raises:
        DataFormatError: an incomplete or missing shard (named), inconsistent shards.
        ConfigError: a prefix size outside ``1..N``.
    """
    if not shard_dirs:
        raise DataFormatError("no shards to merge")
    infos = _check_contiguous([Path(d) for d in shard_dirs])
    n_ids = infos[-1]["identity_stop"]
    bad = [p for p in prefix_sizes if not 0 < int(p) <= n_ids]
    if bad:
        raise ConfigError(f"prefix sizes {bad} outside 1..{n_ids} (the merged identities)")
    n_images = sum(i["images"] for i in infos)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        written = write_lmdb(_records(infos), tmp / "train.lmdb", layout="fr")
        first = np.load(Path(infos[0]["path"]) / "vectors.npy", mmap_mode="r")
        merged = np.lib.format.open_memmap(
            tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=(n_images, first.shape[1])
        )
        row = 0
        identity_of_record = np.empty(n_images, np.int64)
        writer = None
        try:
            for info in infos:
                d = Path(info["path"])
                vec = np.load(d / "vectors.npy", mmap_mode="r")
                table = pq.read_table(d / "manifest.parquet")
                if len(vec) != info["images"] or table.num_rows != info["images"]:
                    raise DataFormatError(
                        f"{d}: vectors.npy ({len(vec)}) / manifest "
                        f"({table.num_rows}) disagree with {info['images']} images"
                    )
                merged[row : row + len(vec)] = vec
                table = table.set_column(
                    table.schema.get_field_index("record"),
                    "record",
                    pa.array(np.arange(row, row + len(vec), dtype=np.int64)),
                )
                identity_of_record[row : row + len(vec)] = table.column("identity").to_numpy()
                if writer is None:
                    writer = pq.ParquetWriter(tmp / "manifest.parquet", table.schema)
                writer.write_table(table)
                row += len(vec)
        finally:
            if writer is not None:
                writer.close()
        merged.flush()
        del merged
        masks = {}
        for p in sorted({int(p) for p in prefix_sizes}):
            mask = np.flatnonzero(identity_of_record < p).astype(np.int64)
            np.save(tmp / f"mask_{p}_ids.npy", mask)
            masks[str(p)] = {"file": f"mask_{p}_ids.npy", "records": int(mask.size)}
        summary = {
            "identities": n_ids,
            "images": written,
            "shards": [i["path"] for i in infos],
            "masks": masks,
        }
        # shards named relative to ``out``: the same merge, the same bytes
        recorded = {**summary, "shards": [path_in_folder(p, out) for p in summary["shards"]]}
        (tmp / "merge.json").write_text(json.dumps(recorded, indent=2))
    return summary
