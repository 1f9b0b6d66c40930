"""The benchmark table of several models: library and ``vec2face fr benchmark`` write the same
files; a zoo export measured on the same benchmark config keeps its recorded figures."""

from __future__ import annotations

import json

import pandas as pd
import torch

from tests.vec2face.fr.test_extract_evaluate import _bins, _model
from vec2face.cli.main import main
from vec2face.fr.benchmark import benchmark_models, recorded_results
from vec2face.fr.evaluate import evaluate_bins
from vec2face.toyfaces.benchmarks import BenchmarksConfig

META = {"backbone": "tiny", "embedding_size": 16, "overrides": {"input_size": 32}}


def _folder(path, seed):
    path.mkdir(parents=True)
    torch.save(_model(seed).state_dict(), path / "backbone.pt")
    (path / "backbone.json").write_text(json.dumps(META))
    return path


def _zoo_export(path, benchmarks: BenchmarksConfig):
    folder = _folder(path, 2)
    measured_on = benchmarks.model_dump(mode="json", exclude={"workers"})
    manifest = {"figures": {"lfw": 0.5, "average": 0.5},
                "data": {"heldout": {"benchmarks": measured_on}}}
    (folder / "zoo_manifest.json").write_text(json.dumps(manifest))
    return folder


def test_library_and_cli_write_the_same_table_and_reuse_recorded_zoo_figures(tmp_path, capsys):
    bins = _bins(tmp_path)
    models = {"a": _folder(tmp_path / "a", 0), "b": _folder(tmp_path / "b", 1)}
    benchmarks = BenchmarksConfig(pairs=100, identities=50)
    models["zoo"] = _zoo_export(tmp_path / "zoo", benchmarks)

    done = benchmark_models(models, bins, tmp_path / "lib", benchmarks=benchmarks, batch_size=16)
    assert done["recorded"] == ["zoo"]
    assert done["results"]["zoo"] == {"lfw": {"accuracy": 0.5}, "average": {"accuracy": 0.5}}
    with torch.no_grad():
        measured = evaluate_bins(_model(0), bins, batch_size=16, autocast=True)
    assert done["results"]["a"]["lfw"]["accuracy"] == measured["lfw"]["accuracy"]
    table = pd.read_parquet(tmp_path / "lib" / "accuracies.parquet")
    assert set(table["model"]) == {"a", "b", "zoo"} and len(table) == 3 + 3 + 2
    md = (tmp_path / "lib" / "table.md").read_text().splitlines()
    assert md[0] == "| Model | LFW | CPLFW | Avg. |" and [r.split()[1] for r in md[2:]] == [
        "a", "b", "zoo"
    ]
    # without the config the zoo model is measured like any other
    assert recorded_results(models["zoo"], None) is None
    other = BenchmarksConfig(pairs=100, identities=50, seed=1)
    assert recorded_results(models["zoo"], other) is None

    (tmp_path / "params.yaml").write_text("benchmarks: {pairs: 100, identities: 50}\n")
    argv = ["fr", "benchmark", "--bins", str(bins), "--out", str(tmp_path / "cli"),
            "--params", str(tmp_path / "params.yaml")]
    for name, folder in models.items():
        argv += ["--model", f"{name}={folder}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Model | LFW | CPLFW | Avg. |" in printed
    for name in ("a.json", "b.json", "zoo.json", "table.md"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()


def test_cli_names_a_model_argument_that_is_not_name_equals_folder(tmp_path, capsys):
    bins = _bins(tmp_path)
    rc = main(["fr", "benchmark", "--bins", str(bins), "--out", str(tmp_path / "o"),
               "--model", "no-folder"])
    assert rc == 2 and not (tmp_path / "o").exists()
    assert "'no-folder' is not NAME=FOLDER" in capsys.readouterr().err
