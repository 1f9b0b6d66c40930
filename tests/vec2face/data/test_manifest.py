from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from vec2face.data import read_manifest, write_manifest
from vec2face.errors import DataFormatError


def test_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"label": [0, 0, 1], "yaw": [1.5, -30.0, 12.0], "name": ["a", "a", "b"]},
                      index=[5, 6, 7])
    path = tmp_path / "m" / "manifest.parquet"
    write_manifest(df, path)
    pd.testing.assert_frame_equal(read_manifest(path), df.reset_index(drop=True))
    write_manifest(pa.table({"x": [1, 2]}), path)
    assert read_manifest(path)["x"].tolist() == [1, 2]
    assert [p.name for p in path.parent.iterdir()] == ["manifest.parquet"]


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="manifest not found"):
        read_manifest(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    with pytest.raises(DataFormatError, match="bad.parquet: not a readable Parquet"):
        read_manifest(tmp_path / "bad.parquet")
    with pytest.raises(TypeError):
        write_manifest([1, 2], tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
