"""The order every trainer reads its data in: each rank its shard of a seeded shuffle.

A :class:`DistributedSampler` is used even in one process: its order depends only on the
seed and the epoch (``sampler.set_epoch(e)``), so a resumed run reads the same batches as
an uninterrupted one. Incomplete last batches are dropped (every step sees ``batch_size``
images, as the official trainings do).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vec2face.errors import DataFormatError


class ShardSampler(DistributedSampler):
    """A :class:`DistributedSampler` whose epoch can start part-way through its order.

    A run paused mid-epoch resumes with ``skip(n)``: the same epoch's order (a function of
    seed and epoch only) from position ``n`` on, without reading the samples before it.
    ``set_epoch`` starts the next epoch from its beginning again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.start = 0

    def skip(self, samples: int) -> None:
        """Begin the current epoch at position ``samples`` of this rank's order."""
        if not 0 <= samples <= self.num_samples:
            raise ValueError(f"cannot skip {samples} of an epoch of {self.num_samples} samples")
        self.start = samples

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


def shard_sampler(
    dataset: Dataset, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1
) -> ShardSampler:
    """This rank's shard of a seeded shuffle of ``dataset``, whole batches only.

    Raises:
        DataFormatError: fewer samples per rank than one batch (naming the dataset's
            ``path`` when it has one).
    """
    if len(dataset) // world_size < batch_size:
        path = getattr(dataset, "path", None)
        raise DataFormatError(
            f"{f'{path}: ' if path else ''}{len(dataset)} samples over {world_size} "
            f"process(es) do not fill one batch of {batch_size}"
        )
    return ShardSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )


def batch_loader(
    dataset: Dataset,
    sampler: DistributedSampler,
    batch_size: int,
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
    **options: Any,
) -> DataLoader:
    """Whole batches of ``dataset`` in ``sampler``'s order; worker processes live across
    epochs. ``options`` go to the :class:`DataLoader` (a worker seed, a generator)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=num_workers > 0,
        **options,
    )
