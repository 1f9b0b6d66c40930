"""Attribute estimators (pose, age, quality) behind one differentiable interface.

AttrOP runs gradient descent on the generator's input vector through a
frozen generator and these estimators, so every estimator is a torch module mapping
images ``(N, 3, 112, 112)`` in [-1, 1] (RGB) to a dict of ``(N,)`` tensors that carry
gradients back to the images. Dataset reports use :meth:`predict` on
uint8 images.

Attributes and units:

- ``yaw``, ``pitch``, ``roll``: degrees (toy convention: + yaw turns the nose toward
  the image's right, + pitch looks up, + roll turns the face clockwise);
- ``age``: years;
- ``quality``: higher is better, on MagFace's feature-norm scale (about 10..35), so
  AttrOP's hinge ``max(0, 27 - quality)`` means the same for the toy and the real one.

The toy estimator, :class:`ToyAttributeNet`, is a small CNN with one regression head
per attribute, trained on labelled toy faces (:mod:`vec2face.attributes.train`). Its
quality target is :func:`toy_quality_label`, a calibrated function of the renderer's
blur, noise and JPEG quality. The real adapters (6DRepNet pose, MagFace quality) live
in :mod:`vec2face.attributes.real`; :class:`CombinedAttributeEstimator` takes each
attribute from whichever estimator is configured for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from vec2face.attributes.base import ATTRIBUTES, AttributeEstimator
from vec2face.config import StepConfig
from vec2face.errors import ConfigError
from vec2face.models._registry import create, register
from vec2face.models.state_dict import load_state_dict_strict, read_checkpoint
from vec2face.utils.io import source_label

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_FAMILY",
    "AttrNetConfig",
    "AttributeEstimator",
    "AttributeEstimatorConfig",
    "CombinedAttributeEstimator",
    "ToyAttributeNet",
    "build_attribute_net",
    "load_attribute_estimator",
    "load_toy_estimator",
    "predict_dataset",
    "toy_quality_label",
]

ATTRIBUTE_FAMILY = "attributes"

# Toy quality calibration (see toy_quality_label): each degradation counts in units of
# about "clearly visible on a 112x112 face".
QUALITY_BLUR_UNIT = 1.0  # Gaussian sigma, px
QUALITY_NOISE_UNIT = 8.0  # noise std on 0..255
QUALITY_JPEG_UNIT = 65.0  # JPEG quality steps below 95
QUALITY_MIN, QUALITY_MAX = 10.0, 35.0
QUALITY_DECAY = 2.0


def toy_quality_label(blur: np.ndarray, noise: np.ndarray, jpeg_quality: np.ndarray) -> np.ndarray:
    """The toy world's quality score: 35 for a pristine image, falling toward 10.

    ``D = blur / 1.0 + noise / 8.0 + (95 - jpeg_quality) / 65`` is the degradation (each
    term >= 0 over the renderer's ranges and increasing in its degradation) and
    ``quality = 10 + 25 * exp(-D / 2)``, strictly decreasing in each of blur, noise and
    JPEG loss. The range mirrors MagFace's feature norms (about 10..35); AttrOP's target
    27 corresponds to ``D <= 0.78``, about the median toy image.

    Args:
        blur: Gaussian blur sigma in pixels, any shape.
        noise: noise standard deviation on the 0..255 scale, same shape.
        jpeg_quality: JPEG quality (30..95; 100 = no loss), same shape.

    Returns:
        float32 array of the broadcast shape.
    """
    blur = np.asarray(blur, np.float64)
    noise = np.asarray(noise, np.float64)
    jpeg = np.asarray(jpeg_quality, np.float64)
    degradation = (
        np.maximum(blur, 0.0) / QUALITY_BLUR_UNIT
        + np.maximum(noise, 0.0) / QUALITY_NOISE_UNIT
        + np.maximum(95.0 - jpeg, 0.0) / QUALITY_JPEG_UNIT
    )
    q = QUALITY_MIN + (QUALITY_MAX - QUALITY_MIN) * np.exp(-degradation / QUALITY_DECAY)
    return q.astype(np.float32)


# --------------------------------------------------------------------------- toy model


@dataclass(frozen=True)
class AttrNetConfig:
    """Architecture of the toy attribute CNN.

    Attributes:
        widths: channels of the stride-2 stem (56 px) and of the 28, 14 and 7 pixel stages.
        spatial_channels: channels of the 7x7 map kept spatially (flattened) for pose.
        hidden: width of the shared MLP before the heads.
        offsets: per-attribute output offset (order of :data:`ATTRIBUTES`).
        scales: per-attribute output scale; heads predict ``(value - offset) / scale``.
    """

    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    spatial_channels: int = 16
    hidden: int = 256
    offsets: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 45.0, 25.0)
    scales: tuple[float, float, float, float, float] = (30.0, 10.0, 6.0, 15.0, 5.0)


_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
N_TEXTURE_STATS = 2 * len(_QUANTILES) + 2


def texture_statistics(images: torch.Tensor) -> torch.Tensor:
    """Fixed, differentiable image-quality statistics.

    Noise raises the low quantiles of the high-pass residual (flat regions stop being
    flat), blur lowers the high ones (edges soften), and JPEG adds energy at the 8x8
    block boundaries. A small CNN finds these slowly from data; given directly they make
    the quality head rank images by degradation after a few epochs.

    Args:
        images: (N, 3, H, W) in [-1, 1].

    Returns:
        float32 (N, 14): log quantiles of |residual| at full and half resolution, and the
        log ratio of horizontal / vertical gradient energy on block boundaries to elsewhere.
    """
    with torch.autocast(images.device.type, enabled=False):
        gray = images.float().mean(dim=1, keepdim=True)
        q = torch.tensor(_QUANTILES, device=images.device)
        stats = []
        for g in (gray, F.avg_pool2d(gray, 2)):
            resid = (g - F.avg_pool2d(g, 3, 1, 1, count_include_pad=False)).abs().flatten(1)
            stats.append(torch.quantile(resid, q, dim=1).T)
        dx = (gray[..., :, 1:] - gray[..., :, :-1]).abs()
        dy = (gray[..., 1:, :] - gray[..., :-1, :]).abs()
        for d, dim in ((dx, 3), (dy, 2)):
            on = (
                d.narrow(dim, 7, 1)
                if d.shape[dim] < 8
                else d.index_select(dim, torch.arange(7, d.shape[dim], 8, device=d.device))
            )
            ratio = (on.mean(dim=(1, 2, 3)) + 1e-4) / (d.mean(dim=(1, 2, 3)) + 1e-4)
            stats.append(ratio.log()[:, None])
        out = torch.cat(stats, dim=1)
        return torch.cat([out[:, :-2].clamp_min(1e-5).log(), out[:, -2:]], dim=1)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ToyAttributeNet(AttributeEstimator):
    """Small CNN with five regression heads for the toy world.

    A stride-2 stem (112 -> 56) and three stages of two 3x3 conv-BN-ReLU layers, the
    first with stride 2 (28, 14, 7). Pose needs where things are, so the 7x7 map is
    reduced to a few channels and flattened; quality (blur, noise, JPEG) is a texture
    statistic, so globally pooled features of the 56 and 28 pixel maps and fixed
    high-pass statistics of the full-resolution image (:func:`texture_statistics`)
    feed the head too.
    """

    def __init__(self, cfg: AttrNetConfig = AttrNetConfig()):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c4 = cfg.widths
        self.stem = _conv_bn(3, c1, 2)
        self.stage1 = nn.Sequential(_conv_bn(c1, c2, 2), _conv_bn(c2, c2, 1))
        self.stage2 = nn.Sequential(_conv_bn(c2, c3, 2), _conv_bn(c3, c3, 1))
        self.stage3 = nn.Sequential(_conv_bn(c3, c4, 2), _conv_bn(c4, c4, 1))
        self.reduce = nn.Sequential(
            nn.Conv2d(c4, cfg.spatial_channels, 1, bias=False),
            nn.BatchNorm2d(cfg.spatial_channels),
            nn.ReLU(inplace=True),
        )
        self.texture_norm = nn.BatchNorm1d(N_TEXTURE_STATS)
        feat = cfg.spatial_channels * 49 + c1 + c2 + c4 + N_TEXTURE_STATS
        self.head = nn.Sequential(
            nn.Linear(feat, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, len(ATTRIBUTES)),
        )
        self.register_buffer(
            "offsets", torch.tensor(cfg.offsets, dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "scales", torch.tensor(cfg.scales, dtype=torch.float32), persistent=False
        )

    def normalized(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, 112, 112) in [-1, 1] -> float32 (N, 5) ``(value - offset) / scale``."""
        x0 = self.stem(images)
        x1 = self.stage1(x0)
        x3 = self.stage3(self.stage2(x1))
        spatial = torch.flatten(self.reduce(x3), 1)
        pooled = [x0.mean(dim=(2, 3)), x1.mean(dim=(2, 3)), x3.mean(dim=(2, 3))]
        texture = self.texture_norm(texture_statistics(images))
        feats = torch.cat([spatial.float(), *(p.float() for p in pooled), texture], dim=1)
        return self.head(feats).float()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, 112, 112) RGB in [-1, 1] -> {yaw, pitch, roll, age, quality}: (N,)."""
        values = self.normalized(images) * self.scales + self.offsets
        return {name: values[:, i] for i, name in enumerate(ATTRIBUTES)}


@register(ATTRIBUTE_FAMILY, "attrnet_s")
def attrnet_s(**overrides) -> ToyAttributeNet:
    """Toy attribute CNN, widths 16-32-64-128 (about 0.5M parameters, 35M MACs per image)."""
    return ToyAttributeNet(AttrNetConfig(**overrides))


def build_attribute_net(name: str = "attrnet_s", **overrides) -> ToyAttributeNet:
    """Build a registered toy attribute model; unknown names list the known ones."""
    return create(ATTRIBUTE_FAMILY, name, **overrides)


def toy_checkpoint_state(model: ToyAttributeNet, arch: str, extra: Mapping | None = None) -> dict:
    """What a toy estimator checkpoint holds: architecture name and config, weights, metadata."""
    cfg = asdict(model.cfg)
    return {
        "arch": arch,
        "arch_config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "model": model.state_dict(),
        "attributes": list(ATTRIBUTES),
        **(extra or {}),
    }


def load_toy_estimator(path: str | os.PathLike, config_key: str | None = None) -> ToyAttributeNet:
    """Load a toy attribute estimator saved by :func:`vec2face.attributes.train.train_attributes`.

    Args:
        path: the checkpoint (``model.pt`` of a training run, or any epoch checkpoint).
        config_key: the configuration key that named ``path``, quoted in errors.

    Returns:
        The model in eval mode on CPU.

    Raises:
        ConfigError: missing or unreadable file, not a toy attribute checkpoint, or
            weights that do not fit the architecture.
    """
    path = Path(path)
    where = source_label(path, config_key)
    ckpt = read_checkpoint(path, config_key, what="attribute estimator checkpoint")
    if not isinstance(ckpt, Mapping) or "arch" not in ckpt or "model" not in ckpt:
        raise ConfigError(
            f"{where}: not a toy attribute estimator checkpoint (needs 'arch' and 'model')"
        )
    cfg = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in dict(ckpt.get("arch_config") or {}).items()
    }
    try:
        model = build_attribute_net(ckpt["arch"], **cfg)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot build attribute model: {exc}") from None
    load_state_dict_strict(model, ckpt["model"], source=where)
    return model.eval()


# --------------------------------------------------------------------------- combining and loading


class CombinedAttributeEstimator(AttributeEstimator):
    """Takes each attribute from the estimator configured for it.

    Args:
        sources: attribute name -> estimator that provides it; the same estimator may
            serve several attributes and runs once per forward.

    Raises:
        ValueError: an attribute is not provided by its estimator, or one is unknown.
    """

    def __init__(self, sources: Mapping[str, AttributeEstimator]):
        super().__init__()
        unknown = sorted(set(sources) - set(ATTRIBUTES))
        if unknown:
            raise ValueError(f"unknown attributes {unknown}; known: {', '.join(ATTRIBUTES)}")
        self.estimators = nn.ModuleList()
        self._route: dict[str, int] = {}
        for name, est in sources.items():
            if name not in est.provides:
                raise ValueError(
                    f"{type(est).__name__} does not provide '{name}' (it gives {est.provides})"
                )
            idx = next((i for i, m in enumerate(self.estimators) if m is est), None)
            if idx is None:
                self.estimators.append(est)
                idx = len(self.estimators) - 1
            self._route[name] = idx
        self.provides = tuple(a for a in ATTRIBUTES if a in self._route)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: (N, 3, 112, 112) RGB in [-1, 1] -> {name: (N,)} for every routed attribute."""
        needed = sorted(set(self._route.values()))
        outputs = {i: self.estimators[i](images) for i in needed}
        return {name: outputs[self._route[name]][name] for name in self.provides}


class AttributeEstimatorConfig(StepConfig):
    """Which estimator gives which attribute (params section ``attribute_estimator``).

    The toy checkpoint gives all five attributes; a configured real adapter replaces
    the toy pose (6DRepNet) or quality (MagFace). Age has no real adapter, so it needs
    the toy checkpoint.
    """

    checkpoint: str | None = Field(
        None,
        description="toy attribute estimator checkpoint (model.pt of 'vec2face attributes train')",
    )
    sixdrepnet: str | None = Field(
        None,
        description="6DRepNet weights (RepVGG-B1g2 deploy layout) for yaw/pitch/roll",
    )
    magface: str | None = Field(
        None,
        description="MagFace checkpoint (insightface IResNet) for quality",
    )
    magface_arch: str = Field(
        "r100", description="backbone of the MagFace checkpoint (r18, r34, r50, r100)"
    )
    attributes: list[str] = Field(
        default_factory=lambda: list(ATTRIBUTES), description="attributes that must be available"
    )


CONFIG_SECTION = "attribute_estimator"


def load_attribute_estimator(config: AttributeEstimatorConfig) -> AttributeEstimator:
    """Build the estimator the configuration names (toy, real adapters, or a mix).

    Args:
        config: paths of the toy checkpoint and the real weights.

    Returns:
        An :class:`AttributeEstimator` in eval mode on CPU providing ``config.attributes``.

    Raises:
        ConfigError: a configured file is missing or does not fit (the message names the
            file and its config key), or a required attribute has no source.
    """
    key = CONFIG_SECTION
    sources: dict[str, AttributeEstimator] = {}
    if config.checkpoint:
        toy = load_toy_estimator(config.checkpoint, config_key=f"{key}.checkpoint")
        sources.update({name: toy for name in ATTRIBUTES})
    if config.sixdrepnet:
        from vec2face.attributes.real import load_sixdrepnet

        pose = load_sixdrepnet(config.sixdrepnet, config_key=f"{key}.sixdrepnet")
        sources.update({name: pose for name in ("yaw", "pitch", "roll")})
    if config.magface:
        from vec2face.attributes.real import load_magface

        quality = load_magface(
            config.magface, arch=config.magface_arch, config_key=f"{key}.magface"
        )
        sources["quality"] = quality
    unknown = [a for a in config.attributes if a not in ATTRIBUTES]
    if unknown:
        raise ConfigError(f"{key}.attributes: unknown {unknown}; known: {', '.join(ATTRIBUTES)}")
    missing = [a for a in config.attributes if a not in sources]
    if missing:
        hint = {"age": f"{key}.checkpoint", "quality": f"{key}.checkpoint or {key}.magface"}
        keys = sorted({hint.get(a, f"{key}.checkpoint or {key}.sixdrepnet") for a in missing})
        raise ConfigError(
            f"no estimator configured for {', '.join(missing)}: set {' / '.join(keys)}"
        )
    return CombinedAttributeEstimator({a: sources[a] for a in ATTRIBUTES if a in sources}).eval()


def predict_dataset(
    estimator: AttributeEstimator,
    data: str | os.PathLike,
    out: str | os.PathLike,
    batch_size: int = 128,
    amp: bool = False,
) -> dict:
    """Estimate attributes of every image of a dataset and write them as Parquet.

    Args:
        estimator: any :class:`AttributeEstimator`.
        data: a dataset :func:`vec2face.data.open_dataset` reads (112x112 images).
        out: the ``.parquet`` file; one row per image with ``index``, ``label``,
            ``location`` and one float32 column per provided attribute.
        batch_size: images decoded and estimated at a time.
        amp: bf16/fp16 autocast.

    Returns:
        {"images", "columns", "path", "mean": {attribute: mean}}.

    Raises:
        DataFormatError: an image is not 112x112 RGB (or cannot be decoded).
    """
    import pandas as pd

    from vec2face.data import open_dataset
    from vec2face.errors import DataFormatError
    from vec2face.utils.io import atomic_path

    cols: dict[str, list[np.ndarray]] = {name: [] for name in estimator.provides}
    with open_dataset(data) as ds:
        n = len(ds)
        labels = ds.labels.copy()
        locations = [ds.location(i) for i in range(n)]
        for s in range(0, n, batch_size):
            batch = []
            for i in range(s, min(n, s + batch_size)):
                img = ds[i].image
                if img.shape != (112, 112, 3):
                    raise DataFormatError(
                        f"{ds.location(i)}: expected a 112x112 RGB image, got {img.shape}"
                    )
                batch.append(img)
            pred = estimator.predict(np.stack(batch), batch_size=batch_size, amp=amp)
            for name in estimator.provides:
                cols[name].append(pred[name])
    table = pd.DataFrame(
        {"index": np.arange(n, dtype=np.int64), "label": labels, "location": locations}
    )
    for name in estimator.provides:
        table[name] = np.concatenate(cols[name]) if cols[name] else np.zeros(0, np.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False)
    return {
        "images": n,
        "columns": list(table.columns),
        "path": str(out),
        "mean": {
            name: float(table[name].mean()) if n else float("nan") for name in estimator.provides
        },
    }
