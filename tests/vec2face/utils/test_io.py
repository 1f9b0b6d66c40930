"""Atomic writes, and torch saves whose bytes depend only on what is saved."""

from __future__ import annotations

import os
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


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_writer_removes_only_temporaries_of_dead_writers(tmp_path):
    from vec2face.utils.io import _host_tag, atomic_dir, is_temporary_name

    host, dead, alive = _host_tag(), _dead_pid(), os.getpid()
    stale_dir = tmp_path / f".out.{host}-{dead}-abc.tmp.d"
    (stale_dir / "train.lmdb").parent.mkdir()
    (stale_dir / "train.lmdb").write_bytes(b"partial")
    stale_file = tmp_path / f".out.{host}-{dead}-def.tmp"
    stale_file.write_bytes(b"partial")
    kept = [
        tmp_path / f".out.{host}-{alive}-ghi.tmp.d",  # a writer still running
        tmp_path / f".out.ffffffff-{dead}-jkl.tmp.d",  # another machine's writer
        tmp_path / f".out.x.{host}-{dead}-mno.tmp.d",  # the temporary of another output
        tmp_path / ".out.keep",  # not a temporary name at all
    ]
    for path in kept:
        path.mkdir()
    assert is_temporary_name(stale_dir.name) and not is_temporary_name(".out.keep")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "x").write_text("new")
    assert not stale_dir.exists() and not stale_file.exists()
    assert all(path.exists() for path in kept)
    assert (tmp_path / "out" / "x").read_text() == "new"


class _Code:
    pass


def test_load_torch_safely_says_what_is_wrong_and_never_to_load_unsafely(tmp_path):
    from vec2face.utils.io import load_torch_safely

    good = tmp_path / "good.pt"
    save_torch_atomic(_state(), good)
    assert load_torch_safely(good).keys() == _state().keys()
    bad = {
        "random.pt": os.urandom(512),
        "text.pt": b"epoch 3, loss 0.25\n",
        "empty.pt": b"",
        "cut.pt": good.read_bytes()[:300],
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"model": _Code()}, tmp_path / "code.pt")
    torch.save({"model": _Code()}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    expected = {
        "random.pt": "not a PyTorch checkpoint",
        "text.pt": "not a PyTorch checkpoint",
        "empty.pt": "not a PyTorch checkpoint",
        "cut.pt": "damaged or not a checkpoint",
        "code.pt": "holds tests.vec2face.utils.test_io._Code, which is not plain data",
        "legacy.pt": "holds tests.vec2face.utils.test_io._Code, which is not plain data",
    }
    for name, text in expected.items():
        with pytest.raises(ValueError) as info:
            load_torch_safely(tmp_path / name)
        message = str(info.value)
        assert text in message and "\n" not in message, (name, message)
        assert "weights_only" not in message and "trust" not in message, (name, message)
