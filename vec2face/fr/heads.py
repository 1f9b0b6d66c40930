"""Margin-softmax heads for face-recognition training (ArcFace, CosFace) and their classifier.

Margins are small modules that turn cosine logits into scaled margin logits
(insightface ``losses.py``); :class:`MarginClassifier` holds the class centres and
computes the loss, optionally on a sampled subset of classes as insightface's
Partial FC does, so a 300K-class problem needs only a ``sample_rate`` fraction of the
logit matrix per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ArcFace", "CosFace", "MarginClassifier", "MarginOutput", "sample_classes"]

# Below this, sqrt(1 - cos^2) has an unbounded gradient; clamping moves the value by
# at most sqrt(1e-10) = 1e-5.
_SIN2_EPS = 1e-10


def _target_update(
    cosine: torch.Tensor, labels: torch.Tensor, new_target: torch.Tensor
) -> torch.Tensor:
    """Put ``new_target`` (N,) into ``cosine`` (N, C) at column ``labels`` where ``labels >= 0``."""
    valid = labels >= 0
    col = labels.clamp_min(0).unsqueeze(1)
    old = cosine.gather(1, col).squeeze(1)
    return cosine.scatter(1, col, torch.where(valid, new_target, old).unsqueeze(1))


def _target_cosine(cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return cosine.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1)


class ArcFace(nn.Module):
    """Additive angular margin: the target logit becomes ``s * cos(theta + m)``.

    Where ``theta + m`` would pass pi (``cos theta <= cos(pi - m)``), cos(theta + m) stops
    decreasing in theta, so insightface switches to the linear continuation
    ``cos theta - m * sin(m)`` (``sin(pi - m) * m``), which keeps the logit monotone.

    Args:
        s: logit scale.
        m: angular margin in radians.
    """

    def __init__(self, s: float = 64.0, m: float = 0.5):
        super().__init__()
        self.s = float(s)
        self.m = float(m)
        self.cos_m = math.cos(m)
        self.sin_m = math.sin(m)
        self.threshold = math.cos(math.pi - m)
        self.sinmm = math.sin(math.pi - m) * m

    def forward(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """cosine: (N, C) in [-1, 1]; labels: (N,) target column, -1 = none -> logits (N, C)."""
        target = _target_cosine(cosine, labels)
        sin = torch.sqrt((1.0 - target * target).clamp_min(_SIN2_EPS))
        with_margin = target * self.cos_m - sin * self.sin_m
        new_target = torch.where(target > self.threshold, with_margin, target - self.sinmm)
        return _target_update(cosine, labels, new_target) * self.s

    def extra_repr(self) -> str:
        return f"s={self.s}, m={self.m}"


class CosFace(nn.Module):
    """Additive cosine margin: the target logit becomes ``s * (cos theta - m)``.

    Args:
        s: logit scale.
        m: cosine margin.
    """

    def __init__(self, s: float = 64.0, m: float = 0.4):
        super().__init__()
        self.s = float(s)
        self.m = float(m)

    def forward(self, cosine: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """cosine: (N, C) in [-1, 1]; labels: (N,) target column, -1 = none -> logits (N, C)."""
        return _target_update(cosine, labels, _target_cosine(cosine, labels) - self.m) * self.s

    def extra_repr(self) -> str:
        return f"s={self.s}, m={self.m}"


def sample_classes(
    labels: torch.Tensor,
    num_classes: int,
    num_sample: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the batch's classes plus random other classes, ``num_sample`` in all.

    Args:
        labels: (N,) class ids in ``[0, num_classes)``.
        num_classes: total classes.
        num_sample: classes to keep; when the batch alone has more, all of its classes
            are kept (as Partial FC does).
        generator: random source for the negatives (on ``labels``' device).

    Returns:
        ``index`` (K,) sorted class ids, K = max(num_sample, distinct labels), and
        ``local_labels`` (N,) the position of each label in ``index``.
    """
    positive = torch.unique(labels, sorted=True)
    if num_sample <= positive.numel():
        index = positive
    else:
        score = torch.rand(num_classes, device=labels.device, generator=generator)
        score[positive] = 2.0  # above any uniform draw: positives are always kept
        index = torch.topk(score, k=num_sample, sorted=False).indices.sort().values
    return index, torch.searchsorted(index, labels)


@dataclass
class MarginOutput:
    """What one classifier step returns.

    Attributes:
        loss: scalar cross-entropy over the margin logits.
        logits: (N, K) scaled margin logits over the K classes used this step.
        accuracy: scalar, share of rows whose highest plain cosine is their own class
            (among the K classes used; with sampling that is an optimistic estimate).
        class_index: (K,) the class ids behind the K logit columns.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    accuracy: torch.Tensor
    class_index: torch.Tensor


class MarginClassifier(nn.Module):
    """Normalised class centres + a margin: cosine logits, margin, cross-entropy.

    Args:
        embedding_size: feature dimension D.
        num_classes: identities C.
        margin: an :class:`ArcFace`/:class:`CosFace`-like module ``(cosine, labels) -> logits``.
        sample_rate: share of classes used per step (Partial FC); 1.0 uses all.
        seed: seed of the negative-class sampler.
    """

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        margin: nn.Module,
        sample_rate: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if num_classes < 1 or embedding_size < 1:
            raise ValueError(
                f"need num_classes >= 1 and embedding_size >= 1, "
                f"got {num_classes} and {embedding_size}"
            )
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.sample_rate = float(sample_rate)
        self.num_sample = max(1, int(sample_rate * num_classes))
        self.margin = margin
        self.seed = seed
        self.weight = nn.Parameter(torch.normal(0.0, 0.01, (num_classes, embedding_size)))
        self._generator: torch.Generator | None = None
        self._pending_state: torch.Tensor | None = None

    def _sampler(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
            if self._pending_state is not None:
                self._generator.set_state(self._pending_state)
                self._pending_state = None
        return self._generator

    def get_extra_state(self) -> dict:
        # The sampler's position travels with checkpoints, so a resumed run draws the
        # same negatives as an uninterrupted one.
        if self._generator is not None:
            return {"sampler_state": self._generator.get_state()}
        return {"sampler_state": self._pending_state} if self._pending_state is not None else {}

    def set_extra_state(self, state: dict) -> None:
        self._generator = None
        self._pending_state = state.get("sampler_state") if state else None

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> MarginOutput:
        """embeddings: (N, D) (any scale); labels: (N,) class ids -> :class:`MarginOutput`."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(
                f"embeddings must be (N, {self.embedding_size}), got {tuple(embeddings.shape)}"
            )
        labels = labels.reshape(-1).long()
        if labels.numel() != embeddings.shape[0]:
            raise ValueError(f"{labels.numel()} labels for {embeddings.shape[0]} embeddings")
        if labels.numel() == 0:
            raise ValueError("empty batch: no embeddings to classify")
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got [{lo}, {hi}]")

        if self.num_sample < self.num_classes:
            index, local = sample_classes(
                labels, self.num_classes, self.num_sample, self._sampler(labels.device)
            )
            weight = self.weight[index]
        else:
            index, local, weight = (
                torch.arange(self.num_classes, device=labels.device),
                labels,
                self.weight,
            )

        cosine = F.linear(F.normalize(embeddings), F.normalize(weight))
        # Margin math and softmax in float32: a bf16/fp16 cosine near 1 loses the margin.
        cosine = cosine.float().clamp(-1.0, 1.0)
        logits = self.margin(cosine, local)
        loss = F.cross_entropy(logits, local)
        with torch.no_grad():
            accuracy = (cosine.argmax(dim=1) == local).float().mean()
        return MarginOutput(loss=loss, logits=logits, accuracy=accuracy, class_index=index)

    def extra_repr(self) -> str:
        return (
            f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, "
            f"sample_rate={self.sample_rate}"
        )
