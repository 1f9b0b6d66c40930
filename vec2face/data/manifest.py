"""Manifests: one Parquet row per image, written with pyarrow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vec2face.errors import DataFormatError
from vec2face.utils.io import atomic_path


def write_manifest(df_or_table: pd.DataFrame | pa.Table, path: str | Path) -> None:
    """Write a DataFrame (index dropped) or an Arrow table to ``path`` atomically."""
    if isinstance(df_or_table, pd.DataFrame):
        table = pa.Table.from_pandas(df_or_table, preserve_index=False)
    elif isinstance(df_or_table, pa.Table):
        table = df_or_table
    else:
        raise TypeError(f"expected a pandas DataFrame or pyarrow Table, got {type(df_or_table).__name__}")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a Parquet manifest into a DataFrame.

    Raises:
        DataFormatError: the file is missing or is not Parquet.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"manifest not found: {path}")
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        msg = " ".join(str(exc).split())
        raise DataFormatError(f"{path}: not a readable Parquet manifest ({msg})") from None
