"""Paths recorded inside an output folder: relative there, resolved against it."""

from __future__ import annotations

from vec2face.utils.paths import path_in_folder, resolve_recorded


def test_a_path_inside_the_folder_is_recorded_relative(tmp_path):
    assert path_in_folder(tmp_path / "out" / "sub" / "a.bin", tmp_path / "out") == "sub/a.bin"
    assert path_in_folder(tmp_path / "out", tmp_path / "out") == "."


def test_a_sibling_is_recorded_the_same_under_any_root(tmp_path):
    one = path_in_folder(tmp_path / "r1" / "models" / "g.pt", tmp_path / "r1" / "data" / "hs")
    root = tmp_path / "x" / "y"
    two = path_in_folder(root / "models" / "g.pt", root / "data" / "hs")
    assert one == two == "../../models/g.pt"


def test_relative_arguments_are_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert path_in_folder("shards/s0", tmp_path / "merged") == "../shards/s0"
    assert path_in_folder(tmp_path / "out" / "f.npy", "out") == "f.npy"


def test_recorded_paths_resolve_against_the_folder(tmp_path):
    folder = tmp_path / "out"
    recorded = path_in_folder(tmp_path / "models" / "g.pt", folder)
    assert resolve_recorded(recorded, folder).resolve() == tmp_path / "models" / "g.pt"
    # an absolute path from a file written before is kept
    assert resolve_recorded(str(tmp_path / "old" / "g.pt"), folder) == tmp_path / "old" / "g.pt"
