"""Dataset-level reports on tiny toy pools with a randomly initialised tiny judge."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from vec2face.attributes.estimators import (
    AttributeEstimatorConfig,
    build_attribute_net,
    toy_checkpoint_state,
)
from vec2face.cli.main import main
from vec2face.data import encode_image, write_imagefolder
from vec2face.errors import ConfigError, DataFormatError
from vec2face.models import build_backbone
from vec2face.reports import dataset_report
from vec2face.reports.dataset_report import ReportConfig, analyze_dataset, write_report
from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces
from vec2face.utils.paths import path_in_folder

EMBED = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_world")
    make_toyfaces(
        ToyfacesConfig(pool="webface", identities=6, images=4, seed=1, workers=1),
        root / "real",
        progress=False,
    )
    make_toyfaces(
        ToyfacesConfig(pool="teacher", identities=5, images=3, seed=2, workers=1),
        root / "synthetic",
        progress=False,
    )
    torch.manual_seed(0)
    torch.save(build_backbone("tiny", embedding_size=EMBED).state_dict(), root / "judge.pt")
    torch.manual_seed(1)
    torch.save(build_backbone("tiny", embedding_size=EMBED).state_dict(), root / "teacher.pt")
    torch.manual_seed(2)
    torch.save(toy_checkpoint_state(build_attribute_net(), "attrnet_s"), root / "attr.pt")
    return root


def _config(world, **overrides) -> ReportConfig:
    values = {
        "judge": str(world / "judge.pt"),
        "judge_backbone": "tiny",
        "embedding_size": EMBED,
        "impostor_pairs": 500,
        "batch_size": 16,
    }
    values.update(overrides)
    return ReportConfig(**values)


def _count_extractions(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = dataset_report.extract_features

    def counting(model, dataset, *args, **kwargs):
        calls.append(len(dataset))
        return real(model, dataset, *args, **kwargs)

    monkeypatch.setattr(dataset_report, "extract_features", counting)
    return calls


def _no_external_references(page: str) -> None:
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith("data:image/png;base64,"), attr


def test_two_dataset_report_writes_every_file_and_a_self_contained_page(
    world, tmp_path, monkeypatch
):
    calls = _count_extractions(monkeypatch)
    centers = np.random.default_rng(0).standard_normal((7, EMBED)).astype(np.float32)
    np.save(tmp_path / "ref.npy", centers)
    cfg = _config(
        world,
        reference_centers=str(tmp_path / "ref.npy"),
        attribute_estimator=AttributeEstimatorConfig(checkpoint=str(world / "attr.pt")),
    )
    out = tmp_path / "out"
    result = write_report({"real": world / "real", "synthetic": world / "synthetic"}, cfg, out)
    assert calls == [24, 15]
    assert set(result["datasets"]) == {"real", "synthetic"}
    head = result["datasets"]["real"]
    assert head["images"] == 24 and head["identities"] == 6
    for key in ("intra_class_outlier_rate", "inter_class_noise_rate", "eer", "overlap",
                "leakage_rate"):
        assert 0.0 <= head[key] <= 1.0
    assert result["judge"]["backbone"] == "tiny"

    for name, n_images in (("real", 24), ("synthetic", 15)):
        folder = out / name
        report = json.loads((folder / "report.json").read_text())
        assert set(report["judge"]["figures"]) == {
            "intra_class", "inter_class", "genuine_impostor", "leakage"
        }
        assert report["judge"]["figures"]["leakage"]["n_reference"] == 7
        assert report["teacher"] is None
        assert set(report["attributes"]["statistics"]) == {"yaw", "pitch", "roll", "age", "quality"}
        images = pd.read_parquet(folder / "images.parquet")
        assert len(images) == n_images
        assert {"cosine_to_center", "outlier", "yaw", "age", "location"} <= set(images.columns)
        identities = pd.read_parquet(folder / "identities.parquet")
        assert {"max_inter_cosine", "nearest_label", "max_reference_cosine", "leaked"} <= set(
            identities.columns
        )
        assert (identities["nearest_label"] != identities["label"]).all()
        for png in ("intra_class", "inter_class", "genuine_impostor", "leakage", "pose", "age"):
            assert (folder / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page = (folder / "report.html").read_text()
        _no_external_references(page)
        assert "judge" in page and path_in_folder(world / "judge.pt", folder) in page
        assert page.count("data:image/png;base64,") >= 6

    comparison = pd.read_parquet(out / "comparison" / "comparison.parquet")
    assert list(comparison["dataset"]) == ["real", "synthetic"]
    for png in ("intra_class", "inter_class", "genuine_impostor", "leakage", "pose", "age"):
        assert (out / "comparison" / f"{png}.png").is_file()
    index = (out / "index.html").read_text()
    _no_external_references(index)
    assert "real" in index and "synthetic" in index and "tiny" in index


def test_features_are_cached_and_a_rerun_does_not_extract(world, tmp_path, monkeypatch):
    calls = _count_extractions(monkeypatch)
    cfg = _config(world)
    first = analyze_dataset(world / "synthetic", cfg, cache_dir=tmp_path / "cache")
    assert calls == [15]
    cached = sorted((tmp_path / "cache").glob("features-*.npy"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    second = analyze_dataset(world / "synthetic", cfg, cache_dir=tmp_path / "cache")
    assert calls == [15]
    assert cached[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.judge.features, second.judge.features)
    # Another judge checkpoint (same architecture, other weights) is another cache entry.
    analyze_dataset(
        world / "synthetic", _config(world, judge=str(world / "teacher.pt")),
        cache_dir=tmp_path / "cache",
    )
    assert calls == [15, 15]


def test_teacher_figures_appear_beside_the_judges(world, tmp_path):
    cfg = _config(world, teacher=str(world / "teacher.pt"), teacher_backbone="tiny")
    result = write_report({"synthetic": world / "synthetic"}, cfg, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "synthetic" / "report.json").read_text())
    folder = tmp_path / "out" / "synthetic"
    assert report["judge"]["model"]["checkpoint"] == path_in_folder(world / "judge.pt", folder)
    assert report["teacher"]["model"]["checkpoint"] == path_in_folder(world / "teacher.pt", folder)
    assert result["judge"]["checkpoint"] == str(world / "judge.pt")  # usable from here
    assert report["judge"]["model"]["sha256"] != report["teacher"]["model"]["sha256"]
    # The headline stays the judge's; the teacher's is a separate block.
    assert report["headline"]["eer"] == report["judge"]["figures"]["genuine_impostor"]["eer"]
    teacher_eer = report["teacher"]["figures"]["genuine_impostor"]["eer"]
    assert report["teacher_headline"]["eer"] == teacher_eer
    assert result["teacher_datasets"]["synthetic"]["eer"] == report["teacher_headline"]["eer"]
    images = pd.read_parquet(tmp_path / "out" / "synthetic" / "images.parquet")
    assert {"cosine_to_center", "teacher_cosine_to_center"} <= set(images.columns)
    page = (tmp_path / "out" / "synthetic" / "report.html").read_text()
    assert "Headline figures" in page and "<td>teacher</td>" in page
    assert path_in_folder(world / "teacher.pt", folder) in page
    assert path_in_folder(world / "judge.pt", folder) in page


def test_a_report_is_the_same_under_any_output_root(world, tmp_path):
    """Same datasets and models, placed alike under two roots: every written file, the
    feature cache included, has the same name and bytes."""
    trees = []
    for root in (tmp_path / "root1", tmp_path / "other" / "deeper"):
        inputs = root / "world"
        shutil.copytree(world, inputs)
        cfg = _config(
            inputs,
            teacher=str(inputs / "teacher.pt"),
            teacher_backbone="tiny",
            attribute_estimator=AttributeEstimatorConfig(checkpoint=str(inputs / "attr.pt")),
        )
        datasets = {"real": inputs / "real", "synthetic": inputs / "synthetic"}
        write_report(datasets, cfg, root / "reports")
        files = sorted(p for p in (root / "reports").rglob("*") if p.is_file())
        trees.append({str(p.relative_to(root)): p.read_bytes() for p in files})
    assert trees[0].keys() == trees[1].keys()
    for name, data in trees[0].items():
        assert data == trees[1][name], name
    report = json.loads(trees[0]["reports/real/report.json"])
    assert report["path"] == "../../world/real"
    assert report["judge"]["model"]["checkpoint"] == "../../world/judge.pt"
    assert report["attributes"]["estimator"] == "checkpoint: ../../world/attr.pt"
    images = pd.read_parquet(tmp_path / "root1" / "reports" / "real" / "images.parquet")
    assert images["location"].str.startswith("../../world/real/").all()
    (row,) = [r for r in json.loads(trees[0]["reports/comparison/comparison.json"])
              if r["dataset"] == "real"]
    assert row["path"] == "../../world/real" and row["judge"] == "../../world/judge.pt"


def _write_folder(path, labels):
    rng = np.random.default_rng(0)
    records = [
        (encode_image(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)), int(label))
        for label in labels
    ]
    write_imagefolder(records, path)


def test_a_single_identity_dataset_is_a_clear_error(world, tmp_path):
    _write_folder(tmp_path / "one", [0, 0, 0])
    with pytest.raises(DataFormatError, match="at least 2 identities"):
        analyze_dataset(tmp_path / "one", _config(world))


def test_single_image_identities_are_reported_exclusions(world, tmp_path):
    _write_folder(tmp_path / "mixed", [0, 0, 0, 1, 2])
    report = analyze_dataset(tmp_path / "mixed", _config(world))
    summary = report.summary()
    assert summary["exclusions"]["single_image_identities"] == 2
    assert summary["exclusions"]["images_of_single_image_identities"] == 2
    assert "single image" in summary["exclusions"]["notes"][0]
    assert summary["judge"]["figures"]["intra_class"]["n_included"] == 3
    json.dumps(summary, allow_nan=False)


def test_nan_features_are_an_error_and_are_not_cached(world, tmp_path, monkeypatch):
    def nan_features(model, dataset, *args, **kwargs):
        out = np.ones((len(dataset), EMBED), dtype=np.float32)
        out[2] = np.nan
        return out

    monkeypatch.setattr(dataset_report, "extract_features", nan_features)
    with pytest.raises(DataFormatError, match="NaN/inf features for 1 image"):
        analyze_dataset(world / "synthetic", _config(world), cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.npy"))


def test_reference_of_another_dimension_is_an_error(world, tmp_path):
    np.save(tmp_path / "ref.npy", np.ones((3, EMBED + 1), dtype=np.float32))
    cfg = _config(world, reference_centers=str(tmp_path / "ref.npy"))
    with pytest.raises(DataFormatError, match=r"dimension 17 but the judge .* 16-d"):
        analyze_dataset(world / "synthetic", cfg)


def test_max_images_samples_whole_identities_with_a_seed(world):
    cfg = _config(world, max_images=10, seed=3)
    a = analyze_dataset(world / "real", cfg)
    b = analyze_dataset(world / "real", cfg)
    assert a.sampled and a.positions.size == 8  # two whole identities of four images
    np.testing.assert_array_equal(a.positions, b.positions)
    assert np.all(np.unique(a.labels, return_counts=True)[1] == 4)
    assert a.summary()["sample"]["images_total"] == 24


def test_bad_names_and_missing_judge_are_config_errors(world, tmp_path):
    with pytest.raises(ConfigError, match="dataset name"):
        write_report({"comparison": world / "real"}, _config(world), tmp_path / "o")
    with pytest.raises(ConfigError, match="no such weights file"):
        analyze_dataset(world / "real", _config(world, judge=str(tmp_path / "none.pt")))


def test_cli_prints_headlines_and_reads_the_params_section(world, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(f"dataset_reports:\n  embedding_size: {EMBED}\n  impostor_pairs: 300\n")
    rc = main([
        "report", str(world / "real"), str(world / "synthetic"), "--out", str(tmp_path / "o"),
        "--judge", str(world / "judge.pt"), "--judge-backbone", "tiny",
        "--name", "webface", "--name", "hsface", "--params", str(params),
    ])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["datasets"]) == {"webface", "hsface"}
    assert printed["datasets"]["hsface"]["images"] == 15
    assert (tmp_path / "o" / "index.html").is_file()
    rc = main(["report", str(world / "real"), "--out", str(tmp_path / "p")])
    assert rc == 2
    assert "dataset_reports.judge" in capsys.readouterr().err


def test_read_headline_reads_the_report_and_names_a_missing_one(tmp_path):
    from vec2face.reports.dataset_report import read_headline

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "report.json").write_text('{"headline": {"eer": 0.02}}')
    assert read_headline(tmp_path, "real") == {"eer": 0.02}
    with pytest.raises(ValueError, match=r"synthetic[/\\]report\.json"):
        read_headline(tmp_path, "synthetic")
