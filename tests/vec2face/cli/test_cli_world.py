"""The toy-world commands through the CLI entry point."""

from __future__ import annotations

import json

from vec2face.cli.main import main
from vec2face.data import open_dataset


def test_toyfaces_command_writes_a_dataset(tmp_path, capsys):
    rc = main(["toyfaces", "--pool", "judge", "--identities", "3", "--images", "2", "--seed", "5",
               "--workers", "1", "--out", str(tmp_path / "j"), "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 6 and summary["pool"] == "judge"
    assert len(open_dataset(tmp_path / "j")) == 6


def test_bad_pool_is_one_line_error(tmp_path, capsys):
    rc = main(["toyfaces", "--pool", "glint", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: toyfaces.pool") and "\n" not in err
    assert not (tmp_path / "x").exists()
