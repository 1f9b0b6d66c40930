"""The order every trainer reads its data in: each rank its shard of a seeded shuffle.

A :class:`DistributedSampler` is used even in one process: its order depends only on the
seed and the epoch (``sampler.set_epoch(e)``), so a resumed run reads the same batches as
an uninterrupted one. Incomplete last batches are dropped (every step sees ``batch_size``
images, as the official trainings do).
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vec2face.errors import DataFormatError


def shard_sampler(
    dataset: Dataset, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1
) -> DistributedSampler:
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
    return DistributedSampler(
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
