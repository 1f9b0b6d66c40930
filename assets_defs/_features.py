"""Teacher features of a dataset, as ``vec2face fr extract`` writes them.

The generator learns from (image, teacher feature, label) records and the identity
sampler from teacher identity centers; both are this extraction with the CLI's defaults
(bf16 autocast on CPU, 128 images a batch), through the same library function, so
``dvc repro`` and Dagster write the same files. Identity centers are flip-summed (the
CLI's default); the generator's per-image features are not (``--no-flip``): a flip-summed
feature is the same for a face and its mirror, so a generator conditioned on it cannot
know which way a head turns, and its identity loss (the teacher on the generated image
alone) would pull every image towards a mirror-symmetric, frontal one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vec2face.fr.extract import write_dataset_features
from vec2face.fr.profiles import FRModelConfig, load_fr_model

BATCH_SIZE = 128


def extract(
    model: FRModelConfig,
    config_key: str,
    data: Path,
    out: Path,
    training_lmdb: Path | None = None,
    flip: bool = True,
) -> dict[str, Any]:
    """Features, labels and identity centers of ``data`` into ``out`` (and a training LMDB).

    Args:
        model: the FR model (its checkpoint is checked and named with ``config_key``).
        config_key: the config key naming the weights, for errors.
        data: any dataset ``open_dataset`` reads.
        out: folder for ``features.npy``, ``labels.npy``, ``centers.npy``, ``center_labels.npy``.
        training_lmdb: also write the Vec2Face training-layout LMDB here.
        flip: flip-sum each image's embedding with its mirror's (False for the generator's
            training features).

    Returns:
        What :func:`vec2face.fr.extract.write_dataset_features` returns.
    """
    net = load_fr_model(model, config_key=config_key)
    return write_dataset_features(
        net,
        data,
        out,
        batch_size=BATCH_SIZE,
        flip=flip,
        device="cpu",
        autocast=True,
        training_lmdb=training_lmdb,
    )
