"""Atomic writes, and torch saves whose bytes depend only on what is saved."""

from __future__ import annotations

import zipfile

import pytest
import torch

from vec2face.training import save_checkpoint
from vec2face.utils.io import atomic_path, save_torch_atomic


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=gen),
        "fc.bias": torch.randn(7, generator=gen),
    }


def test_save_torch_atomic_is_byte_identical_across_paths(tmp_path):
    first = tmp_path / "a" / "backbone.pt"
    second = tmp_path / "elsewhere" / "other_name.pt"
    save_torch_atomic(_state(), first)
    save_torch_atomic(_state(), second)

    assert first.read_bytes() == second.read_bytes()
    # the archive's folder is torch's fixed name, not a (random) file name
    assert {n.split("/")[0] for n in zipfile.ZipFile(first).namelist()} == {"archive"}
    assert not [p.name for p in first.parent.iterdir() if p.name != "backbone.pt"]


def test_save_torch_atomic_loads_with_weights_only(tmp_path):
    path = tmp_path / "model.pt"
    state = _state()
    save_torch_atomic({"model": state, "epoch": 3, "name": "tiny"}, path)

    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and loaded["name"] == "tiny"
    assert loaded["model"].keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded["model"][key], value)


def test_save_torch_atomic_differs_when_content_differs(tmp_path):
    state = _state()
    save_torch_atomic(state, tmp_path / "a.pt")
    state["fc.bias"][0] += 1.0
    save_torch_atomic(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() != (tmp_path / "b.pt").read_bytes()


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle")


def test_save_torch_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_torch_atomic({"weights": torch.ones(2), "bad": _Unpicklable()}, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_checkpoints_in_different_folders_are_byte_identical(tmp_path):
    state = {"model": _state(), "epoch": 1}
    one = save_checkpoint(state, tmp_path / "run1" / "checkpoints", epoch=1)
    two = save_checkpoint(state, tmp_path / "run2" / "ckpt", epoch=1)
    assert one.read_bytes() == two.read_bytes()
    assert (one.parent / "last.pt").read_bytes() == one.read_bytes()


def test_atomic_path_leaves_target_untouched_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("before")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert path.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
