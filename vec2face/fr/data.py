"""FR training data: one or several labelled datasets, batches of uint8 faces, augmentation.

Training reads any format :func:`vec2face.data.open_dataset` opens. Several datasets can be
concatenated (the paper's Table 2 mixes real and synthetic sets): each dataset's labels are
renumbered to ``0..k-1`` and shifted past the previous datasets', so identities stay distinct.

Batches travel as uint8 (N, H, W, 3) tensors; small datasets are decoded once into one
uint8 tensor (no per-epoch JPEG decoding at all), large ones are decoded by DataLoader
workers. Augmentation runs on whole batches on the training device with a seeded
``torch.Generator``, so it costs little and every draw depends only on
``(seed, epoch, rank, step)``: a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vec2face.data import open_dataset
from vec2face.data.base import FaceDataset, MaskLike
from vec2face.data.images import decode_image
from vec2face.errors import DataFormatError
from vec2face.training.loaders import batch_loader, shard_sampler
from vec2face.utils.seeding import derive_seed

__all__ = [
    "AugmentConfig",
    "BatchStream",
    "FRTrainingData",
    "augment_batch",
    "to_float_input",
]


class FRTrainingData(Dataset):
    """Several face datasets as one labelled set with disjoint label ranges.

    Args:
        paths: datasets (any format ``open_dataset`` reads), concatenated in this order.
        masks: optional record mask per dataset (None entries: no mask).
        image_size: the side every image must have (aligned faces).

    Attributes:
        labels: int64 (N,) global label of every sample.
        num_classes: distinct identities over all datasets.
        label_ranges: ``[start, stop)`` of each dataset's labels.

    Raises:
        DataFormatError: no datasets, an empty dataset, or a mask count that does not match.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        masks: Sequence[MaskLike] | None = None,
        image_size: int = 112,
    ):
        if not paths:
            raise DataFormatError("no training datasets given")
        masks = list(masks) if masks is not None else [None] * len(paths)
        if len(masks) != len(paths):
            raise DataFormatError(f"{len(masks)} masks for {len(paths)} datasets")
        self.image_size = int(image_size)
        self.datasets: list[FaceDataset] = []
        labels, ranges, starts = [], [], []
        offset = count = 0
        for path, mask in zip(paths, masks, strict=True):
            ds = open_dataset(path, mask=mask)
            if len(ds) == 0:
                raise DataFormatError(f"{path}: the dataset holds no samples")
            _, local = np.unique(ds.labels, return_inverse=True)
            k = int(local.max()) + 1
            labels.append(local.astype(np.int64) + offset)
            ranges.append((offset, offset + k))
            starts.append(count)
            self.datasets.append(ds)
            offset += k
            count += len(ds)
        self.labels = np.concatenate(labels)
        self.num_classes = offset
        self.label_ranges = ranges
        self._starts = np.asarray(starts, dtype=np.int64)
        self._cache: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _locate(self, i: int) -> tuple[FaceDataset, int]:
        d = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.datasets[d], i - int(self._starts[d])

    def read_image(self, i: int) -> np.ndarray:
        """Decoded image of sample ``i``: uint8 (S, S, 3) RGB."""
        ds, j = self._locate(i)
        data, _, _ = ds.read_raw(j)
        image = decode_image(data, ds.location(j))
        if image.shape != (self.image_size, self.image_size, 3):
            raise DataFormatError(
                f"{ds.location(j)}: image is {image.shape[1]}x{image.shape[0]}, FR training "
                f"needs aligned {self.image_size}x{self.image_size} faces"
            )
        return image

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """Sample ``i``: uint8 (S, S, 3) image tensor and its global label."""
        if self._cache is not None:
            return self._cache[i], int(self.labels[i])
        return torch.from_numpy(self.read_image(i)), int(self.labels[i])

    @property
    def cached(self) -> bool:
        """Whether every image is decoded in memory."""
        return self._cache is not None

    def cache_bytes(self) -> int:
        """Memory a decoded cache of all images takes."""
        return len(self) * self.image_size * self.image_size * 3

    def decode_all(self) -> None:
        """Decode every image once into a uint8 (N, S, S, 3) tensor (for small datasets)."""
        if self._cache is not None:
            return
        cache = torch.empty((len(self), self.image_size, self.image_size, 3), dtype=torch.uint8)
        for i in range(len(self)):
            cache[i] = torch.from_numpy(self.read_image(i))
        self._cache = cache

    def __getstate__(self) -> dict:
        # Workers only exist without a cache; never pickle a gigabyte tensor into them.
        state = self.__dict__.copy()
        state["_cache"] = None
        return state


class BatchStream:
    """Shuffled, rank-sharded batches of (uint8 (N, S, S, 3) images, int64 (N,) labels).

    The order comes from a :class:`DistributedSampler` (also in one process), so it depends
    only on ``(seed, epoch)`` and a resumed run reads the same batches. Incomplete batches
    are dropped. A cached dataset is sliced directly; otherwise DataLoader workers decode.

    Args:
        data: the training set.
        batch_size: images per rank per step.
        seed: seed of the order.
        rank: this process's rank.
        world_size: number of processes.
        num_workers: decoding workers (ignored for a cached dataset).
        pin_memory: pin batches (CUDA).

    Raises:
        DataFormatError: fewer samples per rank than one batch.
    """

    def __init__(
        self,
        data: FRTrainingData,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        self.data = data
        self.batch_size = batch_size
        self.sampler = shard_sampler(data, batch_size, seed=seed, rank=rank, world_size=world_size)
        self._loader: DataLoader | None = None
        if not data.cached:
            self._loader = batch_loader(
                data, self.sampler, batch_size, num_workers=num_workers, pin_memory=pin_memory
            )
        self._labels = torch.from_numpy(data.labels)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Select the order of epoch ``epoch``."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._loader is not None:
            for images, labels in self._loader:
                yield images, labels.long()
            return
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.int64)
        cache = self.data._cache
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield cache.index_select(0, idx), self._labels.index_select(0, idx)


def to_float_input(
    images: torch.Tensor, device: torch.device, channels_last: bool = True
) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1] on ``device``.

    The permuted NHWC storage is already channels-last; ``channels_last=False`` makes it
    contiguous NCHW.
    """
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x if channels_last else x.contiguous()


@dataclass(frozen=True)
class AugmentConfig:
    """Batch augmentation settings (Table 5: random augmentation + random erasing + flip).

    Attributes:
        flip: mirror each image with probability 0.5.
        rand_augment: apply random photometric (brightness, contrast, saturation) and
            geometric (rotation, shift, scale) changes, each with probability 0.5.
        magnitude: strength of ``rand_augment`` in [0, 1] (1: +-40% photometric, +-15
            degrees, +-10% shift, +-10% scale).
        erase_prob: probability of blanking one random rectangle (random erasing).
        erase_scale: area range of the rectangle, as a share of the image.
        erase_ratio: aspect-ratio range of the rectangle.
    """

    flip: bool = True
    rand_augment: bool = False
    magnitude: float = 0.5
    erase_prob: float = 0.0
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_ratio: tuple[float, float] = (0.3, 3.3)

    @property
    def active(self) -> bool:
        return self.flip or self.rand_augment or self.erase_prob > 0


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64).float()


def _photometric(x: torch.Tensor, mag: float, gen: torch.Generator) -> torch.Tensor:
    """x: (N, 3, H, W) in [-1, 1] -> brightness/contrast/saturation-jittered, clamped."""
    n = x.shape[0]
    amount = 0.4 * mag
    dev = x.device
    shape = (n, 1, 1, 1)
    on = [(torch.rand(n, generator=gen) < 0.5).float().to(dev).view(shape) for _ in range(3)]
    factors = [_uniform(n, 1 - amount, 1 + amount, gen).to(dev).view(shape) for _ in range(3)]
    img = (x + 1.0) * 0.5
    bright = img * factors[0]
    img = torch.lerp(img, bright, on[0])
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (img - mean) * factors[1] + mean
    img = torch.lerp(img, contrast, on[1])
    grey = 0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]
    sat = (img - grey) * factors[2] + grey
    img = torch.lerp(img, sat, on[2])
    return img.clamp_(0.0, 1.0).mul_(2.0).sub_(1.0)


def _geometric(x: torch.Tensor, mag: float, gen: torch.Generator) -> torch.Tensor:
    """x: (N, 3, H, W) -> rotated/shifted/scaled per image (probability 0.5 each), border-padded."""
    n = x.shape[0]
    apply = torch.rand(n, generator=gen) < 0.5
    angle = torch.deg2rad(_uniform(n, -15.0 * mag, 15.0 * mag, gen))
    scale = _uniform(n, 1 - 0.1 * mag, 1 + 0.1 * mag, gen)
    shift = torch.stack([_uniform(n, -0.2 * mag, 0.2 * mag, gen) for _ in range(2)], dim=1)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(n, 2, 3)
    theta = torch.where(apply.view(n, 1, 1), theta, eye).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _erase(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """x: (N, C, H, W) -> with probability ``erase_prob`` one rectangle per image set to 0."""
    n, _, h, w = x.shape
    apply = torch.rand(n, generator=gen) < cfg.erase_prob
    area = _uniform(n, *cfg.erase_scale, gen) * h * w
    log_r = _uniform(n, math.log(cfg.erase_ratio[0]), math.log(cfg.erase_ratio[1]), gen)
    ratio = torch.exp(log_r)
    eh = torch.sqrt(area * ratio).round().clamp(1, h).long()
    ew = torch.sqrt(area / ratio).round().clamp(1, w).long()
    top = (torch.rand(n, generator=gen) * (h - eh + 1).float()).long()
    left = (torch.rand(n, generator=gen) * (w - ew + 1).float()).long()
    rows = torch.arange(h).view(1, h)
    cols = torch.arange(w).view(1, w)
    in_rows = (rows >= top.view(n, 1)) & (rows < (top + eh).view(n, 1))
    in_cols = (cols >= left.view(n, 1)) & (cols < (left + ew).view(n, 1))
    mask = (in_rows.view(n, h, 1) & in_cols.view(n, 1, w)) & apply.view(n, 1, 1)
    return x.masked_fill(mask.unsqueeze(1).to(x.device), 0.0)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Augment a batch: random augmentation, horizontal flip, random erasing.

    Args:
        x: (N, 3, H, W) float in [-1, 1] on any device (memory format is kept).
        cfg: what to apply.
        gen: CPU generator every random draw comes from (the same draws on any device).

    Returns:
        (N, 3, H, W) augmented batch in [-1, 1].
    """
    if not cfg.active:
        return x
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if cfg.rand_augment:
        x = _photometric(x, cfg.magnitude, gen)
        x = _geometric(x, cfg.magnitude, gen)
    if cfg.flip:
        flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    if cfg.erase_prob > 0:
        x = _erase(x, cfg, gen)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The augmentation generator of one epoch on one rank."""
    return torch.Generator().manual_seed(derive_seed(seed, "fr-augment", epoch, rank))
