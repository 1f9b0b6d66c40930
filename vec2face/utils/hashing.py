"""The project's sha256 digests, each written once: of bytes, of a file, of a model's state.

Stamps, manifests and fingerprints compare these strings, so two places that hash the
same thing must hash the same bytes.
"""

from __future__ import annotations

import hashlib
import os

import torch

__all__ = ["bytes_sha256", "file_sha256", "state_sha256"]

_CHUNK = 1 << 24  # 16 MiB a read: large files hash at disk speed with bounded memory


def bytes_sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 16 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def state_sha256(module: torch.nn.Module) -> str:
    """Hex sha256 of a module's state dict (names, dtypes, shapes, values): equal iff the
    states are identical, whatever the tensors' memory layout."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        # A fresh flat copy: channels-last 1x1 kernels count as contiguous yet have stride != 1.
        h.update(t.reshape(-1).clone().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
