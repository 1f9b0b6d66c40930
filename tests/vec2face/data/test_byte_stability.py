"""Same inputs, same bytes: every dataset writer, run in two separate processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vec2face.data import write_lmdb

# One process's worth of writing: every format (both LMDB layouts), a .bin and a subset.
_WRITE_ALL = """
import sys
from pathlib import Path

from vec2face.data import convert_dataset, read_bin, write_bin
from vec2face.data.subset import SubsetConfig, make_subset

src, out = Path(sys.argv[1]), Path(sys.argv[2])
convert_dataset(src, out / "folder", to="imagefolder")
convert_dataset(src, out / "fr.lmdb", to="lmdb", layout="fr")
convert_dataset(src, out / "training", to="lmdb", layout="training")
convert_dataset(src, out / "rec", to="recordio")
convert_dataset(src, out / "glint.rec", to="recordio")
images = [bytes(b) for b in read_bin(sys.argv[3])[0]]
write_bin(images, [True, False] * (len(images) // 4), out / "lfw.bin")
make_subset(src, out / "subset", SubsetConfig(identities=2, write_mask=True))
"""


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_writer_gives_identical_bytes_in_two_processes(
    tmp_path: Path, records: list[tuple]
) -> None:
    from vec2face.data import write_bin

    src = tmp_path / "src.lmdb"
    # several pages, so more than one commit; each identity contiguous, as RecordIO needs
    write_lmdb(sorted(records * 10, key=lambda r: r[1]), src, layout="training")
    write_bin([r[0] for r in records[:8]], [True] * 4, tmp_path / "in.bin")
    trees = []
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        proc = subprocess.run(
            [sys.executable, "-c", _WRITE_ALL, str(src), str(out), str(tmp_path / "in.bin")],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        trees.append(_tree(out))
    assert sorted(trees[0]) == sorted(trees[1])
    assert {"fr.lmdb", "training/train.lmdb", "rec/train.rec", "glint.idx", "lfw.bin",
            "subset/train.lmdb", "folder/2/000029.png"} <= set(trees[0])
    differ = [name for name in trees[0] if trees[0][name] != trees[1][name]]
    assert differ == []
