"""Generator training data: tensors from training-layout records, seeded sharded loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vec2face.data import encode_image, write_lmdb
from vec2face.errors import DataFormatError
from vec2face.generator.data import (
    GeneratorTrainingData,
    image_to_tensor,
    make_train_loader,
    tensor_to_image,
)

N = 12


def _records(n: int = N, dim: int = 512, size: int = 112, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    features = rng.standard_normal((n, dim)).astype(np.float32)
    return (
        images,
        features,
        [(encode_image(images[i], "png"), i // 3, features[i]) for i in range(n)],
    )


@pytest.fixture(scope="module")
def training_lmdb(tmp_path_factory):
    images, features, records = _records()
    path = tmp_path_factory.mktemp("gdata") / "train.lmdb"
    write_lmdb(records, path, layout="training")
    return path, images, features


def test_items_are_normalised_tensors_matching_the_records(training_lmdb):
    path, images, features = training_lmdb
    ds = GeneratorTrainingData(path)
    assert len(ds) == N and ds.feature_dim == 512
    img, feat, label = ds[4]
    assert img.shape == (3, 112, 112) and img.dtype == torch.float32
    assert feat.shape == (512,) and feat.dtype == torch.float32
    assert label == 1
    expected = torch.from_numpy(images[4]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(img, expected, atol=1e-6)
    assert img.min() >= -1 and img.max() <= 1
    assert torch.equal(feat, torch.from_numpy(features[4]))
    assert np.array_equal(tensor_to_image(img[None])[0], images[4])


def test_features_reads_evenly_spaced_records_without_images(training_lmdb):
    path, _, features = training_lmdb
    ds = GeneratorTrainingData(path)
    assert np.array_equal(ds.features(), features)
    rows = np.linspace(0, N - 1, 3).round().astype(int)
    assert np.array_equal(ds.features(3), features[rows])
    assert ds.features(10 * N).shape == (N, 512) and ds.features(3).dtype == np.float32


def test_image_tensor_roundtrip_extremes():
    img = np.array([[[0, 128, 255]]], dtype=np.uint8)
    t = image_to_tensor(img)
    assert t.flatten().tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    assert np.array_equal(tensor_to_image(t[None])[0], img)


def test_mask_selects_records_in_mask_order(training_lmdb, tmp_path):
    path, _, features = training_lmdb
    mask = tmp_path / "mask.npy"
    np.save(mask, np.array([7, 2, 9]))
    ds = GeneratorTrainingData(path, mask=mask)
    assert len(ds) == 3
    assert torch.equal(ds[0][1], torch.from_numpy(features[7]))
    assert [ds[i][2] for i in range(3)] == [2, 0, 3]


def test_dataset_without_features_asks_for_feature_extraction(tmp_path):
    _, _, records = _records(4)
    path = tmp_path / "fr.lmdb"
    write_lmdb(records, path, layout="fr")
    with pytest.raises(DataFormatError, match="run feature extraction first") as err:
        GeneratorTrainingData(path)
    assert str(path) in str(err.value)


def test_wrong_feature_length_and_image_size_name_the_record(tmp_path):
    _, _, records = _records(4, dim=128)
    path = tmp_path / "short.lmdb"
    write_lmdb(records, path, layout="training")
    ds = GeneratorTrainingData(path, feature_dim=512)
    with pytest.raises(DataFormatError, match=r"record 2: feature has shape \(128,\)"):
        ds[2]
    _, _, small = _records(2, size=64)
    path = tmp_path / "small.lmdb"
    write_lmdb(small, path, layout="training")
    with pytest.raises(DataFormatError, match="record 1: image is 64x64"):
        GeneratorTrainingData(path)[1]


def _epoch_labels(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return [f[:, 0].tolist() for _, f, _ in loader]


def test_loader_order_is_seeded_per_epoch_and_ranks_partition_the_data(training_lmdb):
    path, _, features = training_lmdb
    ds = GeneratorTrainingData(path)
    a = make_train_loader(ds, 3, seed=5)
    b = make_train_loader(ds, 3, seed=5)
    c = make_train_loader(ds, 3, seed=6)
    assert _epoch_labels(a, 0) == _epoch_labels(b, 0)
    assert _epoch_labels(a, 0) != _epoch_labels(a, 1)
    assert _epoch_labels(a, 0) != _epoch_labels(c, 0)
    assert len(a) == 4

    shards = [make_train_loader(ds, 2, seed=5, rank=r, world_size=2) for r in range(2)]
    seen = [sorted(x for batch in _epoch_labels(s, 3) for x in batch) for s in shards]
    assert len(seen[0]) == len(seen[1]) == N // 2
    assert sorted(seen[0] + seen[1]) == sorted(features[:, 0].tolist())


def test_worker_processes_read_the_same_batches(training_lmdb):
    path, _, _ = training_lmdb
    ds = GeneratorTrainingData(path)
    inline = make_train_loader(ds, 4, seed=1)
    workers = make_train_loader(ds, 4, seed=1, num_workers=2)
    inline.sampler.set_epoch(2)
    workers.sampler.set_epoch(2)
    for (i0, f0, l0), (i1, f1, l1) in zip(inline, workers, strict=True):
        assert torch.equal(i0, i1) and torch.equal(f0, f1) and torch.equal(l0, l1)


def test_too_few_samples_for_one_batch(training_lmdb):
    ds = GeneratorTrainingData(training_lmdb[0])
    with pytest.raises(DataFormatError, match="do not fill one batch of 8"):
        make_train_loader(ds, 8, seed=0, world_size=2)
