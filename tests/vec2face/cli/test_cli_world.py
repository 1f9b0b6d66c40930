"""The toy-world commands through the CLI entry point."""

from __future__ import annotations

import json

import yaml

from vec2face.cli.main import main
from vec2face.data import open_dataset, read_bin


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


def test_run_renders_world_benchmarks_and_subset(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "world": {"seed": 0, "pools": {"webface": {"identities": 6, "images": 3}}},
        "benchmarks": {"pairs": 20, "identities": 20, "sets": ["lfw", "cfp_fp"]},
        "subset": {"identities": 4, "min_images": 3, "seed": 1},
    }))
    rc = main(["run", "--params", str(params), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["benchmarks"]) == ["cfp_fp", "lfw"]
    images, issame = read_bin(result["benchmarks"]["lfw"])
    assert len(images) == 40 and len(issame) == 20
    sub = open_dataset(result["webface_subset"]["path"])
    assert len(sub) == 12 and sub.num_identities == 4
