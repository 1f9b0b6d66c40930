"""How good a trained generator is, measured on identities it never saw (issue: tiny targets).

Everything is judged by the **judge**, an FR model that never took part in
any loss; the teacher only supplies the vectors the generator consumes. For real images
``x`` of a verification set (pairs ``(x, y)``), the generator rebuilds ``x'`` from the
teacher's feature of ``x``:

* open-set reconstruction: mean judge cosine between ``x`` and ``x'``;
* identity preservation: judge verification accuracy on the pairs ``(x', y)`` over its
  accuracy on ``(x, y)`` (the same pairs, the same protocol);
* pixel error and sharpness on the face region: mean absolute error of ``x'`` against
  ``x``, and the variance of the Laplacian of ``x'`` over that of ``x``.

The face region is the fixed central box :data:`FACE_BOX`: the toy world and the
aligned 112x112 crops of real FR data both put the face there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from vec2face.evaluation.verification import verification_accuracy
from vec2face.fr.extract import embed_batch
from vec2face.generator.data import tensor_to_image

__all__ = [
    "FACE_BOX",
    "GeneratorQuality",
    "embed_images",
    "laplacian_variance",
    "measure_generator_quality",
]

#: (top, bottom, left, right) of the face in a 112x112 aligned crop: brows to chin, ear to ear
FACE_BOX: tuple[int, int, int, int] = (24, 100, 22, 90)


def laplacian_variance(images: np.ndarray, box: tuple[int, int, int, int] = FACE_BOX) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of the grey image inside ``box``, per image.

    Args:
        images: uint8 or float (N, H, W, 3) RGB.
        box: (top, bottom, left, right) region; the Laplacian is taken on its interior.

    Returns:
        float64 (N,) variances (0 for a flat region; larger for sharper detail).
    """
    t, b, l, r = box
    grey = images[:, t:b, l:r].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = (
        grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
        - 4.0 * grey[:, 1:-1, 1:-1]
    )
    return lap.reshape(len(images), -1).var(axis=1)


@dataclass(frozen=True)
class GeneratorQuality:
    """Figures of :func:`measure_generator_quality` (see the module docstring)."""

    pairs: int
    judge_cosine_recon: float          # mean cos(judge(x), judge(x'))
    judge_accuracy_real: float         # judge verification accuracy on (x, y)
    judge_accuracy_generated: float    # ... on (x', y)
    identity_preservation: float       # generated / real accuracy
    teacher_cosine_recon: float        # mean cos(teacher(x'), v_x): what the loss optimised
    face_mae: float                    # mean |x' - x| on the face box, in 0..255 levels
    sharpness_real: float              # mean Laplacian variance of x on the face box
    sharpness_generated: float         # ... of x'
    sharpness_ratio: float             # generated / real

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def embed_images(
    model: nn.Module, images: np.ndarray, batch: int = 64, amp: bool = True, flip: bool = True
) -> np.ndarray:
    """uint8 (N, H, W, 3) -> L2-normalised float32 (N, D) features, flip-summed when ``flip``
    (the verification protocol) or of the image alone (what the generator consumes). Runs on
    the model's device."""
    device = next(model.parameters()).device
    return np.concatenate(
        [embed_batch(model, images[i : i + batch], flip, device, amp) for i in range(0, len(images), batch)]
    )


def measure_generator_quality(
    generator: nn.Module,
    teacher: nn.Module,
    judge: nn.Module,
    images: np.ndarray,
    issame: list[bool] | np.ndarray,
    seed: int = 0,
    batch_size: int = 64,
    amp: bool = True,
) -> tuple[GeneratorQuality, np.ndarray]:
    """Rebuild the first image of every pair from its teacher feature and score it.

    Args:
        generator: a :class:`~vec2face.models.generator.Vec2FaceGenerator`.
        teacher: FR model whose features (of the image alone, normalised) the generator
            consumes; the judge's are flip-summed, as in the verification protocol.
        judge: independent FR model that scores the results.
        images: uint8 (2P, 112, 112, 3), pairs interleaved as in a ``.bin`` file.
        issame: P booleans; P must split into the protocol's 10 folds.
        seed: seed of the generator's masks.
        batch_size: images per forward pass.
        amp: bf16 autocast for the FR models and the generator.

    Returns:
        (figures, generated uint8 (P, 112, 112, 3) images of the pairs' first members).
    """
    issame = np.asarray(issame, dtype=bool)
    if images.ndim != 4 or len(images) != 2 * len(issame):
        raise ValueError(
            f"images must be (2 * {len(issame)}, H, W, 3) for {len(issame)} pairs, got {images.shape}"
        )
    first, second = images[0::2], images[1::2]
    # The generator's input and its identity loss see the image alone: a flip-summed feature
    # is mirror-invariant and would hide which way the head turns.
    vectors = embed_images(teacher, first, batch_size, amp, flip=False)
    generated = tensor_to_image(
        generator.generate(torch.from_numpy(vectors), seed=seed, batch_size=batch_size, autocast_bf16=amp)
    )
    j_first, j_second, j_gen = (embed_images(judge, x, batch_size, amp) for x in (first, second, generated))
    t_gen = embed_images(teacher, generated, batch_size, amp, flip=False)

    def interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty((2 * len(a), a.shape[1]), dtype=np.float32)
        out[0::2], out[1::2] = a, b
        return out

    acc_real = verification_accuracy(interleave(j_first, j_second), issame).accuracy
    acc_gen = verification_accuracy(interleave(j_gen, j_second), issame).accuracy
    t, b, l, r = FACE_BOX
    mae = np.abs(generated[:, t:b, l:r].astype(np.float64) - first[:, t:b, l:r]).mean()
    sharp_real = float(laplacian_variance(first).mean())
    sharp_gen = float(laplacian_variance(generated).mean())
    figures = GeneratorQuality(
        pairs=len(issame),
        judge_cosine_recon=float((j_first * j_gen).sum(1).mean()),
        judge_accuracy_real=float(acc_real),
        judge_accuracy_generated=float(acc_gen),
        identity_preservation=float(acc_gen / acc_real) if acc_real > 0 else float("nan"),
        teacher_cosine_recon=float((vectors * t_gen).sum(1).mean()),
        face_mae=float(mae),
        sharpness_real=sharp_real,
        sharpness_generated=sharp_gen,
        sharpness_ratio=sharp_gen / sharp_real if sharp_real > 0 else float("nan"),
    )
    return figures, generated
