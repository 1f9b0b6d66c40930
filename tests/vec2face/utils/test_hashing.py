"""One sha256 of bytes, of a file and of a model's state."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from vec2face.utils.hashing import bytes_sha256, file_sha256, state_sha256


def test_file_and_bytes_digests_are_plain_sha256(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()
    assert bytes_sha256(data) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 3))


def test_state_digest_follows_values_dtypes_and_names_not_memory_layout():
    net = _net()
    reference = state_sha256(net)
    assert state_sha256(_net()) == reference  # same state, same digest
    assert state_sha256(_net().to(memory_format=torch.channels_last)) == reference
    changed = _net()
    with torch.no_grad():
        changed[2].bias[1] += 1e-3
    assert state_sha256(changed) != reference
    assert state_sha256(_net().double()) != reference
    renamed = nn.Sequential(nn.Identity(), *_net())  # the same tensors under other names
    assert state_sha256(renamed) != reference
