"""Feature extraction, identity centers, training-layout LMDB, evaluation, model loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vec2face.cli.main import main
from vec2face.data import encode_image, open_dataset, read_bin, write_bin, write_lmdb
from vec2face.errors import ConfigError, DataFormatError
from vec2face.fr.evaluate import evaluate_bins, load_verification_sets, markdown_table
from vec2face.fr.extract import (
    extract_features,
    identity_centers,
    load_trained_backbone,
    write_dataset_features,
    write_training_lmdb,
)
from vec2face.fr.profiles import fr_model_config, load_fr_model
from vec2face.models import build_backbone


def _model(seed=0):
    torch.manual_seed(seed)
    return build_backbone("tiny", embedding_size=16, input_size=32).eval()


def _faces(path, identities=3, per_id=4, size=32):
    rng = np.random.default_rng(0)
    records = [
        (encode_image(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "png"), i)
        for i in range(identities)
        for _ in range(per_id)
    ]
    write_lmdb(records, path, layout="fr")
    return path


def test_identity_centers_are_renormalised_means_of_unit_features():
    feats = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, -2.0], [0.0, -5.0]])
    centers, labels = identity_centers(feats, np.array([7, 7, 2, 2]))
    np.testing.assert_array_equal(labels, [2, 7])
    np.testing.assert_allclose(centers, [[0.0, -1.0], [np.sqrt(0.5), np.sqrt(0.5)]], atol=1e-6)
    with pytest.raises(ValueError):
        identity_centers(feats, np.array([1, 2]))


def test_extract_features_shapes_normalisation_and_flip(tmp_path):
    ds = open_dataset(_faces(tmp_path / "d.lmdb"))
    model = _model()
    feats = extract_features(model, ds, batch_size=5, flip=True)
    assert feats.shape == (12, 16) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    single = extract_features(model, ds, batch_size=12, flip=True)
    np.testing.assert_allclose(feats, single, atol=1e-5)  # batching does not change results
    plain = extract_features(model, ds, batch_size=5, flip=False)
    assert not np.allclose(feats, plain, atol=1e-4)
    with torch.no_grad():
        x = torch.from_numpy(ds[3].image).permute(2, 0, 1)[None].float() / 127.5 - 1
        both = model(x) + model(x.flip(3))
    np.testing.assert_allclose(feats[3], torch.nn.functional.normalize(both)[0].numpy(), atol=1e-5)


def test_cli_extract_writes_features_centers_and_a_training_lmdb(tmp_path, capsys):
    data = _faces(tmp_path / "d.lmdb")
    model = _model()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "backbone.json").write_text(
        json.dumps({"backbone": "tiny", "embedding_size": 16, "overrides": {"input_size": 32}})
    )
    lmdb_out = tmp_path / "train.lmdb"
    rc = main(
        [
            "fr",
            "extract",
            "--model",
            str(tmp_path / "w.pt"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "feats"),
            "--no-amp",
            "--batch-size",
            "4",
            "--write-training-lmdb",
            str(lmdb_out),
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 12 and report["training_lmdb"]["records"] == 12
    feats = np.load(tmp_path / "feats" / "features.npy")
    labels = np.load(tmp_path / "feats" / "labels.npy")
    centers = np.load(tmp_path / "feats" / "centers.npy")
    assert feats.shape == (12, 16) and centers.shape == (3, 16)
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 4))
    np.testing.assert_allclose(centers, identity_centers(feats, labels)[0], atol=1e-6)

    back = open_dataset(lmdb_out)
    assert back.has_features and len(back) == 12
    original = open_dataset(data)
    for i in (0, 7, 11):
        sample = back[i]
        assert sample.label == original[i].label
        np.testing.assert_array_equal(sample.image, original[i].image)
        np.testing.assert_array_equal(sample.feature, feats[i])


def test_write_dataset_features_writes_what_the_cli_writes(tmp_path, capsys):
    data = _faces(tmp_path / "d.lmdb")
    model = _model()
    result = write_dataset_features(
        model, data, tmp_path / "lib", batch_size=5, training_lmdb=tmp_path / "lib.lmdb"
    )
    assert result == {
        "images": 12,
        "identities": 3,
        "dim": 16,
        "files": {n: str(tmp_path / "lib" / f"{n}.npy")
                  for n in ("features", "labels", "centers", "center_labels")},
        "training_lmdb": {"path": str(tmp_path / "lib.lmdb"), "records": 12},
    }
    torch.save(model.state_dict(), tmp_path / "w.pt")
    args = ["fr", "extract", "--model", str(tmp_path / "w.pt")]
    (tmp_path / "backbone.json").write_text(
        json.dumps({"backbone": "tiny", "embedding_size": 16, "overrides": {"input_size": 32}})
    )
    # the CLI's defaults are the library's (bf16 autocast on, CPU)
    args += ["--data", str(data), "--out", str(tmp_path / "cli"), "--batch-size", "5"]
    assert main([*args, "--write-training-lmdb", str(tmp_path / "cli.lmdb")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["training_lmdb"] == {"path": str(tmp_path / "cli.lmdb"), "records": 12}
    for name in ("features", "labels", "centers", "center_labels"):
        lib = (tmp_path / "lib" / f"{name}.npy").read_bytes()
        assert lib == (tmp_path / "cli" / f"{name}.npy").read_bytes(), name
    with open_dataset(tmp_path / "lib.lmdb") as a, open_dataset(tmp_path / "cli.lmdb") as b:
        assert [a.read_raw(i)[0] for i in range(12)] == [b.read_raw(i)[0] for i in range(12)]
        np.testing.assert_array_equal(
            np.stack([a[i].feature for i in range(12)]), np.stack([b[i].feature for i in range(12)])
        )


def test_write_dataset_features_honours_the_mask_and_no_lmdb_by_default(tmp_path):
    data = _faces(tmp_path / "d.lmdb")
    np.save(tmp_path / "mask.npy", np.array([0, 1, 4, 5, 6], dtype=np.int64))
    result = write_dataset_features(_model(), data, tmp_path / "f", mask=tmp_path / "mask.npy")
    assert result["images"] == 5 and result["identities"] == 2 and "training_lmdb" not in result
    np.testing.assert_array_equal(np.load(tmp_path / "f" / "labels.npy"), [0, 0, 1, 1, 1])
    assert np.load(tmp_path / "f" / "centers.npy").shape == (2, 16)


def test_write_training_lmdb_refuses_a_feature_count_mismatch(tmp_path):
    ds = open_dataset(_faces(tmp_path / "d.lmdb"))
    with pytest.raises(ConfigError, match="11 features for 12 images"):
        write_training_lmdb(ds, np.zeros((11, 16), np.float32), tmp_path / "x.lmdb")


def _bins(tmp_path):
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    images, same = [], []
    for p in range(40):  # genuine pairs: one face and a noisy copy; impostors: two faces
        a = p % 10
        b = a if p % 2 == 0 else (a + 3) % 10
        noisy = np.clip(faces[b].astype(int) + rng.integers(-5, 6, (32, 32, 3)), 0, 255)
        images += [encode_image(faces[a], "png"), encode_image(noisy.astype(np.uint8), "png")]
        same.append(p % 2 == 0)
    for name in ("lfw", "cplfw"):
        write_bin(images, same, tmp_path / "bins" / f"{name}.bin")
    return tmp_path / "bins"


def test_evaluate_bins_and_the_cli_table(tmp_path, capsys):
    bins = _bins(tmp_path)
    model = _model()
    results = evaluate_bins(model, bins, batch_size=16)
    assert list(results) == ["lfw", "cplfw", "average"]
    assert results["lfw"]["accuracy"] > 0.9  # near-copies vs distinct random images
    assert {"accuracy_std", "best_threshold", "tar@far=1e-03"} <= set(results["lfw"])
    table = markdown_table(results, "m")
    assert table.splitlines()[0] == "| Model | LFW | CPLFW | Avg. |"
    assert table.splitlines()[2].startswith(f"| m | {100 * results['lfw']['accuracy']:.2f} |")
    # sets decoded once score the same as the folder they came from
    assert evaluate_bins(model, load_verification_sets(bins), batch_size=16) == results

    torch.save(model.state_dict(), tmp_path / "w.pt")
    rc = main(
        [
            "fr",
            "evaluate",
            "--model",
            str(tmp_path / "w.pt"),
            "--backbone",
            "tiny",
            "--bins",
            str(bins),
            "--no-amp",
            "--name",
            "toy",
        ]
    )
    assert rc != 0  # a 32px tiny model needs its architecture: no backbone.json, default 112
    capsys.readouterr()
    (tmp_path / "backbone.json").write_text(
        json.dumps({"backbone": "tiny", "embedding_size": 16, "overrides": {"input_size": 32}})
    )
    rc = main(
        [
            "fr",
            "evaluate",
            "--model",
            str(tmp_path / "w.pt"),
            "--bins",
            str(bins),
            "--no-amp",
            "--name",
            "toy",
            "--json-out",
            str(tmp_path / "r.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| Model | LFW | CPLFW | Avg. |" in out and "| toy |" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["lfw"]["accuracy"] == pytest.approx(results["lfw"]["accuracy"])


def test_missing_teacher_weights_name_the_file_and_the_config_key(tmp_path, capsys):
    cfg = fr_model_config(
        "teacher",
        {
            "fr_teacher": {
                "backbone": "r100",
                "checkpoint": str(tmp_path / "arcface-r100-glint360k.pth"),
            }
        },
    )
    with pytest.raises(ConfigError, match=r"arcface-r100-glint360k\.pth.*fr_teacher\.checkpoint"):
        load_fr_model(cfg, config_key="fr_teacher.checkpoint")
    params = tmp_path / "params.yaml"
    params.write_text(f"fr_judge:\n  backbone: tiny\n  checkpoint: {tmp_path / 'judge.pth'}\n")
    rc = main(
        ["fr", "evaluate", "--role", "judge", "--params", str(params), "--bins", str(tmp_path)]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "judge.pth" in err and "fr_judge.checkpoint" in err


def test_trained_folder_loads_by_its_json_and_a_conflicting_name_is_refused(tmp_path):
    model = _model(3)
    torch.save(model.state_dict(), tmp_path / "backbone.pt")
    (tmp_path / "backbone.json").write_text(
        json.dumps({"backbone": "tiny", "embedding_size": 16, "overrides": {"input_size": 32}})
    )
    loaded = load_trained_backbone(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    with pytest.raises(ConfigError, match="'tiny' backbone"):
        load_trained_backbone(tmp_path, backbone="r50")


def _tiny_weights(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "w.pt")
    (tmp_path / "backbone.json").write_text(
        json.dumps({"backbone": "tiny", "embedding_size": 16, "overrides": {"input_size": 32}})
    )
    return tmp_path / "w.pt"


def _evaluate_error(argv, capsys) -> str:
    capsys.readouterr()
    assert main(["fr", "evaluate", *argv, "--no-amp"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("content", [b"\x8f\x00 random bytes \xfe" * 40, b"lr: 0.1\nepochs: 3\n"])
def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path, capsys, content):
    bins = _bins(tmp_path)
    (tmp_path / "notes.pt").write_bytes(content)
    err = _evaluate_error(["--model", str(tmp_path / "notes.pt"), "--backbone", "tiny",
                           "--bins", str(bins)], capsys)
    assert "notes.pt: not a PyTorch checkpoint" in err
    assert "weights_only" not in err  # never the advice that would let a file run code


def test_an_empty_bin_is_one_error_naming_it(tmp_path, capsys):
    weights = _tiny_weights(tmp_path)
    write_bin([], [], tmp_path / "bins" / "lfw.bin")
    err = _evaluate_error(["--model", str(weights), "--bins", str(tmp_path / "bins")], capsys)
    assert "lfw.bin: no pairs to score" in err


@pytest.mark.parametrize("same", [True, False])
def test_a_bin_with_one_kind_of_pair_is_refused(tmp_path, capsys, same):
    weights = _tiny_weights(tmp_path)
    bins = _bins(tmp_path)
    images, _ = read_bin(bins / "lfw.bin")
    write_bin(images, [same] * (len(images) // 2), bins / "lfw.bin")
    kind, undefined = ("genuine", "FAR") if same else ("impostors", "TAR")
    err = _evaluate_error(["--model", str(weights), "--bins", str(bins)], capsys)
    assert f"lfw.bin: all 40 pairs are {kind}" in err and f"{undefined} is undefined" in err
    with pytest.raises(DataFormatError, match=f"lfw.bin: all 40 pairs are {kind}"):
        evaluate_bins(_model(), bins, batch_size=16)


def test_fewer_pairs_than_folds_is_refused_before_inference(tmp_path):
    bins = _bins(tmp_path)
    images, same = read_bin(bins / "lfw.bin")
    write_bin(images[:12], same[:6], bins / "lfw.bin")
    with pytest.raises(DataFormatError, match=r"lfw\.bin: 6 pairs, fewer than the 10 folds"):
        evaluate_bins(_model(), bins, batch_size=16)
