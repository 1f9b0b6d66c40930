"""FR training data: concatenation with disjoint labels, batches, seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vec2face.data import encode_image, write_lmdb
from vec2face.errors import DataFormatError
from vec2face.fr.data import (
    AugmentConfig,
    BatchStream,
    FRTrainingData,
    augment_batch,
    augment_generator,
    to_float_input,
)


def _faces(path, identities, per_id, size=32, seed=0, label_step=1):
    """An FR-layout LMDB of per-identity colour patterns plus noise (PNG, lossless)."""
    rng = np.random.default_rng(seed)
    records = []
    for ident in range(identities):
        base = rng.integers(0, 256, (4, 4, 3)).repeat(size // 4, 0).repeat(size // 4, 1)
        for _ in range(per_id):
            noise = rng.integers(-20, 21, base.shape)
            img = np.clip(base + noise, 0, 255).astype(np.uint8)
            records.append((encode_image(img, "png"), ident * label_step))
    write_lmdb(records, path, layout="fr")
    return path


def test_mixed_datasets_get_disjoint_label_ranges(tmp_path):
    a = _faces(tmp_path / "a.lmdb", 3, 2, seed=1)
    b = _faces(tmp_path / "b.lmdb", 2, 3, seed=2, label_step=5)  # labels 0, 5: renumbered
    data = FRTrainingData([a, b], image_size=32)
    assert len(data) == 12
    assert data.num_classes == 5
    assert data.label_ranges == [(0, 3), (3, 5)]
    np.testing.assert_array_equal(data.labels, [0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4])
    image, label = data[7]
    assert image.shape == (32, 32, 3) and image.dtype == torch.uint8 and label == 3


def test_wrong_image_size_and_mask_count_are_refused(tmp_path):
    a = _faces(tmp_path / "a.lmdb", 2, 2)
    with pytest.raises(DataFormatError, match="112x112"):
        FRTrainingData([a])[0]
    with pytest.raises(DataFormatError, match="2 masks for 1 datasets"):
        FRTrainingData([a], masks=[None, None], image_size=32)


def test_cached_and_decoding_streams_give_the_same_batches(tmp_path):
    a = _faces(tmp_path / "a.lmdb", 4, 5)
    plain = BatchStream(FRTrainingData([a], image_size=32), 4, seed=3)
    cached_data = FRTrainingData([a], image_size=32)
    cached_data.decode_all()
    cached = BatchStream(cached_data, 4, seed=3)
    assert len(plain) == len(cached) == 5
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for (xa, ya), (xb, yb) in zip(plain, cached, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    plain.set_epoch(0)
    first = next(iter(plain))[1]
    plain.set_epoch(1)
    assert not torch.equal(first, next(iter(plain))[1])


def test_ranks_read_disjoint_shards(tmp_path):
    a = _faces(tmp_path / "a.lmdb", 4, 4)
    data = FRTrainingData([a], image_size=32)
    data.decode_all()
    seen = []
    for rank in (0, 1):
        stream = BatchStream(data, 2, seed=0, rank=rank, world_size=2)
        seen.append({tuple(x.reshape(2, -1)[:, :8].flatten().tolist()) for x, _ in stream})
    assert not seen[0] & seen[1]


def test_augmentation_is_seeded_and_does_what_it_says():
    x = to_float_input(
        torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8), torch.device("cpu")
    )
    full = AugmentConfig(flip=True, rand_augment=True, magnitude=1.0, erase_prob=1.0)
    a = augment_batch(x, full, augment_generator(0, 1, 0))
    b = augment_batch(x, full, augment_generator(0, 1, 0))
    c = augment_batch(x, full, augment_generator(0, 2, 0))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.is_contiguous(memory_format=torch.channels_last)
    assert a.min() >= -1 and a.max() <= 1

    flipped = augment_batch(x, AugmentConfig(flip=True), augment_generator(0, 0, 0))
    for i in range(16):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))
    assert any(not torch.equal(flipped[i], x[i]) for i in range(16))

    erased = augment_batch(
        x + 2.0, AugmentConfig(flip=False, erase_prob=1.0), augment_generator(0, 0, 0)
    )
    zero_share = (erased == 0).all(dim=1).float().mean(dim=(1, 2))
    assert ((zero_share >= 0.015) & (zero_share <= 0.34)).all()
    assert augment_batch(x, AugmentConfig(flip=False), augment_generator(0, 0, 0)) is x
