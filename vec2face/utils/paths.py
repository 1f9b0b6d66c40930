"""Paths recorded in files inside an output folder.

Outputs are tracked by content hash (DVC), so a JSON summary that stores a path as it
was passed in would give the same output a different hash under another output root.
Files inside a folder therefore record paths relative to that folder, and readers
resolve them against it.
"""

from __future__ import annotations

import os
from pathlib import Path


def path_in_folder(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``path`` as a file inside ``folder`` records it: relative to ``folder``, ``/``-separated.

    A path outside ``folder`` comes out as ``../...``; it stays the same wherever the two
    are moved together (one output root holding both).
    """
    rel = os.path.relpath(Path(path).absolute(), Path(folder).absolute())
    return Path(rel).as_posix()


def resolve_recorded(recorded: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """A path read from a file inside ``folder``, usable from here.

    Relative paths are taken from ``folder``; absolute ones (files written before paths
    were recorded relative) are returned as they are.
    """
    return Path(folder) / recorded
