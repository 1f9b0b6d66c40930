"""Generator training data: Vec2Face training-layout records as torch tensors.

Each record of the training layout carries an encoded face image, the teacher's 512-d
feature of that image and the identity label (the paper's training data). The generator learns to
turn the feature back into the image, so a dataset without features cannot train it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vec2face.data import open_dataset
from vec2face.data.base import FaceDataset, MaskLike
from vec2face.errors import DataFormatError
from vec2face.training.loaders import batch_loader, shard_sampler
from vec2face.utils.seeding import derive_seed

IMAGE_SIZE = 112


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W) in [-1, 1] (the official Normalize(0.5, 0.5))."""
    return (
        torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    )


def tensor_to_image(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] (any float dtype/device) -> uint8 (N, H, W, 3) RGB."""
    arr = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return arr.permute(0, 2, 3, 1).to(torch.uint8).numpy()


class GeneratorTrainingData(Dataset):
    """A training-layout dataset (image, teacher feature, label) as tensors.

    The underlying reader opens its files lazily per process, so the dataset can be handed
    to DataLoader workers (LMDB handles never cross a ``fork``).

    Args:
        path: an LMDB (or any format :func:`vec2face.data.open_dataset` reads) whose records
            carry teacher features.
        mask: optional record mask (``.npy`` path or 1-D int array), e.g. the official
            50K-identity mask.
        feature_dim: the feature length every record must have; None takes the first
            record's.

    Raises:
        DataFormatError: the dataset is empty or carries no features (run feature
            extraction first), or a record's feature has the wrong length.
    """

    def __init__(self, path: str | Path, mask: MaskLike = None, feature_dim: int | None = None):
        self.path = Path(path)
        self.faces: FaceDataset = open_dataset(self.path, mask=mask)
        if len(self.faces) == 0:
            raise DataFormatError(f"{self.path}: the dataset holds no records (after the mask)")
        if not self.faces.has_features:
            raise DataFormatError(
                f"{self.path}: records carry no teacher features ({self.faces.format} dataset "
                "without the training layout); run feature extraction first to write "
                "(image, feature, label) records"
            )
        if feature_dim is None:
            first = self.faces.read_raw(0)[2]
            feature_dim = 0 if first is None else first.shape[0]
        self.feature_dim = int(feature_dim)

    def __len__(self) -> int:
        return len(self.faces)

    def features(self, max_records: int | None = None) -> np.ndarray:
        """Teacher features of evenly spaced records, without decoding images.

        Args:
            max_records: at most this many (evenly spaced, so deterministic); None: all.

        Returns:
            (n, feature_dim) float32.
        """
        n = len(self)
        take = n if max_records is None else max(1, min(n, int(max_records)))
        rows = np.linspace(0, n - 1, take).round().astype(np.int64)
        out = np.empty((take, self.feature_dim), np.float32)
        for j, i in enumerate(rows):
            out[j] = self._checked_feature(int(i), self.faces.read_raw(int(i))[2])
        return out

    def _checked_feature(self, i: int, feature: np.ndarray | None) -> np.ndarray:
        """Record ``i``'s feature, or a DataFormatError naming the record."""
        if feature is None:
            raise DataFormatError(f"{self.faces.location(i)}: record has no teacher feature")
        if feature.shape != (self.feature_dim,):
            raise DataFormatError(
                f"{self.faces.location(i)}: feature has shape {feature.shape}, "
                f"the generator needs ({self.feature_dim},)"
            )
        return feature

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Sample ``i``: image (3, 112, 112) float32 in [-1, 1], feature (D,) float32, label."""
        sample = self.faces[i]
        feature = self._checked_feature(i, sample.feature)
        if sample.image.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise DataFormatError(
                f"{self.faces.location(i)}: image is "
                f"{sample.image.shape[1]}x{sample.image.shape[0]}, the generator trains on "
                f"aligned {IMAGE_SIZE}x{IMAGE_SIZE} faces"
            )
        return (
            image_to_tensor(sample.image),
            torch.from_numpy(feature.copy()),
            int(sample.label),
        )


def _seed_worker(worker_id: int) -> None:
    # Workers draw nothing random today; seeding numpy from torch's per-worker seed keeps
    # any future augmentation reproducible instead of sharing the parent's numpy state.
    np.random.seed(torch.initial_seed() % 2**32)


def make_train_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A shuffling loader that gives every rank its own shard, reproducibly per epoch
    (:mod:`vec2face.training.loaders`; call ``loader.sampler.set_epoch(e)``), with seeded
    workers and a generator of its own for the workers' base seed.

    Raises:
        DataFormatError: fewer samples per rank than one batch.
    """
    sampler = shard_sampler(dataset, batch_size, seed=seed, rank=rank, world_size=world_size)
    return batch_loader(
        dataset,
        sampler,
        batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(derive_seed(seed, "loader", rank)),
    )
