"""AttrOP (the paper's attribute operation): gradient descent on generator inputs toward identity and attribute targets.

The generator is frozen; what moves is its input vector ``x``. Each step renders
``G(x)`` (with token masks fixed for the whole run, so the objective does not change
from step to step), and minimises, per item,

    id_weight * (1 - cos(FR(G(x)), v))                    (id_weight = 100)
    + max(0, q_target - quality(G(x)))                    when a quality target is set
    + | yaw_target - |yaw(G(x))| |                        when a yaw target is set

with Adam (lr 0.1), where ``v`` is the identity vector the image must keep. An item
stops when ``1 - cos < 0.3``, the quality hinge ``< 1`` and the yaw error ``< 5``
degrees, or when the step budget is spent.

Adam's steps have an absolute size (about ``lr`` per component at first), so lr 0.1 is
tied to the scale of the official inputs: raw ArcFace features, whose components have
unit variance (norm ~22). Ours are L2-normalised (components ~0.044), where a step of
0.1 would replace the vector by the sign pattern of its gradient at once. Adam therefore
runs on ``u = x / rms(x0)`` (``rms(x0) = |x0| / sqrt(dim)``, the starting vector's
root-mean-square component): exactly the official arithmetic for inputs at the official
scale, and the same relative steps for ours (as the intra-class sigma, see
:mod:`vec2face.hsface.variation`).

The stopping test follows the official ``gen_image``: its threshold 0.3 is on the
*unweighted* distance ``1 - cos`` (cosine above 0.7); the 100x weight only scales the
gradient against the attribute terms. Unlike the official code, which stops when the
batch *mean* passes and otherwise loops forever, the test here is per item and the
budget is hard. Adam is written out over the rows still running (torch.optim.Adam's
arithmetic; a frozen row's moments stop too), so a converged item is frozen exactly where
it passed the test. Items do not interact, but another batch composition changes float
summation order by an ulp, which Adam's normalised steps amplify through the generator:
results are bitwise reproducible for the same batches, and only close (cosine ~1e-3
after a few steps on the tiny model) across batch sizes.

:func:`refine_identities` is the paper's identity refinement (id term only, one
fixed mask per identity seeded by its global index).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.models.generator import Vec2FaceGenerator
from vec2face.utils.seeding import derive_seed

log = logging.getLogger(__name__)

__all__ = [
    "AttrOPResult",
    "AttrOPSettings",
    "attrop",
    "refine_identities",
    "refinement_masks",
]

# Adam's constants (torch.optim.Adam defaults, as the official code uses).
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
_TERMS = ("id_loss", "quality", "yaw", "loss")


class _Progress(Protocol):
    def update(self, n: int) -> Any: ...


@dataclass(frozen=True)
class AttrOPSettings:
    """Targets, stopping thresholds and budget of one AttrOP run.

    Attributes:
        max_steps: hard budget of Adam steps per item (>= 1).
        lr: Adam learning rate, in units of the starting vector's rms component.
        id_weight: weight of ``1 - cos`` in the loss.
        id_threshold: an item passes when ``1 - cos < id_threshold``.
        quality_target: hinge target on the estimator's quality (MagFace scale; 27 in the
            paper); None drops the quality term.
        quality_tolerance: passes when ``max(0, quality_target - quality) < tolerance``.
        yaw_target: target |yaw| in degrees (0..90); None drops the pose term.
        yaw_tolerance: passes when ``|yaw_target - |yaw|| < tolerance``.
        bf16: run the generator and the scoring models under bfloat16 autocast.
    """

    max_steps: int = 100
    lr: float = 0.1
    id_weight: float = 100.0
    id_threshold: float = 0.3
    quality_target: float | None = 27.0
    quality_tolerance: float = 1.0
    yaw_target: float | None = None
    yaw_tolerance: float = 5.0
    bf16: bool = False

    def __post_init__(self) -> None:
        steps = self.max_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ConfigError(f"AttrOP max_steps must be an integer >= 1, got {steps!r}")
        for name in ("lr", "id_weight", "id_threshold", "quality_tolerance", "yaw_tolerance"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"AttrOP {name} must be finite and > 0, got {value!r}")
        if self.quality_target is not None and not math.isfinite(self.quality_target):
            raise ConfigError(f"AttrOP quality_target must be finite, got {self.quality_target}")
        if self.yaw_target is not None and not 0.0 <= self.yaw_target <= 90.0:
            raise ConfigError(
                f"AttrOP yaw_target must be in [0, 90] degrees, got {self.yaw_target}"
            )

    @property
    def needs(self) -> tuple[str, ...]:
        """Attributes the estimator must provide for these targets."""
        return tuple(
            name
            for name, target in (("yaw", self.yaw_target), ("quality", self.quality_target))
            if target is not None
        )


@dataclass
class AttrOPResult:
    """What an AttrOP run returns; per-item arrays are in input order.

    Attributes:
        vectors: float32 (N, dim) the optimised input vectors (a converged item's vector is
            the one that passed the test).
        steps: int64 (N,) Adam steps applied to each item.
        id_loss: float32 (N,) ``1 - cos(FR(G(vectors)), identity)`` at the returned vectors.
        quality: float32 (N,) estimated quality there (NaN when there is no quality target).
        yaw: float32 (N,) estimated yaw there, signed degrees (NaN without a yaw target).
        converged: bool (N,) passed every test within the budget.
        settings: the run's settings.
        history: with ``record_history``, {"id_loss", "quality", "yaw", "loss"}: float32
            (max_steps + 1, N), the value at each evaluation (row = steps taken before it),
            NaN once the item has stopped.
    """

    vectors: np.ndarray
    steps: np.ndarray
    id_loss: np.ndarray
    quality: np.ndarray
    yaw: np.ndarray
    converged: np.ndarray
    settings: AttrOPSettings
    history: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def shortfall(self) -> dict[str, np.ndarray]:
        """How far each item is from passing each test: float32 (N,) each, 0 where it passes.

        Keys: ``id_loss`` (excess of ``1 - cos`` over its threshold), ``quality`` (excess of
        the hinge over its tolerance) and ``yaw`` (excess of the yaw error over its tolerance),
        the last two only for the targets that are set.
        """
        s = self.settings
        gaps = {"id_loss": np.maximum(self.id_loss - s.id_threshold, 0.0)}
        if s.quality_target is not None:
            hinge = np.maximum(s.quality_target - self.quality, 0.0)
            gaps["quality"] = np.maximum(hinge - s.quality_tolerance, 0.0)
        if s.yaw_target is not None:
            error = np.abs(s.yaw_target - np.abs(self.yaw))
            gaps["yaw"] = np.maximum(error - s.yaw_tolerance, 0.0)
        return {k: v.astype(np.float32) for k, v in gaps.items()}

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary: counts, steps, final values, and the shortfall of the items
        that hit the budget (how many miss each test, and by how much at most / on average)."""
        n = len(self)
        failed = ~self.converged
        out: dict[str, Any] = {
            "items": n,
            "converged": int(self.converged.sum()),
            "hit_budget": int(failed.sum()),
            "max_steps": self.settings.max_steps,
            "mean_steps": float(self.steps.mean()) if n else 0.0,
            "mean_id_loss": float(self.id_loss.mean()) if n else float("nan"),
        }
        if self.settings.quality_target is not None and n:
            out["mean_quality"] = float(self.quality.mean())
        if self.settings.yaw_target is not None and n:
            out["mean_abs_yaw"] = float(np.abs(self.yaw).mean())
        shortfall = {}
        for name, gap in self.shortfall.items():
            missed = gap[failed] > 0
            shortfall[name] = {
                "items": int(missed.sum()),
                "max": float(gap[failed].max()) if failed.any() else 0.0,
                "mean": float(gap[failed][missed].mean()) if missed.any() else 0.0,
            }
        out["shortfall"] = shortfall
        return out

    @classmethod
    def concat(cls, parts: Sequence[AttrOPResult]) -> AttrOPResult:
        """Join the results of consecutive chunks run with the same settings."""
        if not parts:
            raise ValueError("AttrOPResult.concat needs at least one result")
        joined = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(cls)
            if f.name not in ("settings", "history")
        }
        history = None
        if all(p.history is not None for p in parts):
            history = {k: np.concatenate([p.history[k] for p in parts], axis=1) for k in _TERMS}
        return cls(**joined, settings=parts[0].settings, history=history)


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
def _as_matrix(x: torch.Tensor | np.ndarray, dim: int, name: str) -> torch.Tensor:
    """A finite float32 (N, dim) CPU tensor, or a Vec2FaceError naming the problem."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x, dtype=np.float32))  # a copy: inputs may be read-only
    if not isinstance(x, torch.Tensor):
        raise Vec2FaceError(f"AttrOP: {name} must be a tensor or array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
        raise Vec2FaceError(f"AttrOP: {name} must have shape (N>0, {dim}), got {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32)
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten()[:5].tolist()
        raise Vec2FaceError(f"AttrOP: {name} contain NaN/inf (rows {rows})")
    return x


def _check_masks(
    masks: tuple[torch.Tensor, torch.Tensor], n: int, model: Vec2FaceGenerator
) -> tuple[torch.Tensor, torch.Tensor]:
    keep, mask = masks
    tokens = model.feature_token.out_features
    if keep.ndim != 2 or keep.shape[0] != n or mask.shape != (n, tokens):
        raise Vec2FaceError(
            f"AttrOP: masks must be keep_idx (N, K) and mask (N, {tokens}) for N={n} items, "
            f"got {tuple(keep.shape)} and {tuple(mask.shape)}"
        )
    return keep.to("cpu", torch.long), mask.to("cpu", torch.bool)


def _check_estimator(estimator: nn.Module | None, settings: AttrOPSettings) -> None:
    if not settings.needs:
        return
    if estimator is None:
        raise ConfigError(
            f"AttrOP targets {', '.join(settings.needs)} need an attribute estimator "
            "(or set quality_target / yaw_target to None)"
        )
    provides = getattr(estimator, "provides", None)
    missing = [a for a in settings.needs if provides is not None and a not in provides]
    if missing:
        raise ConfigError(
            f"AttrOP: the attribute estimator gives {tuple(provides)}, not {', '.join(missing)}"
        )


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------
def _render(
    model: Vec2FaceGenerator, x: torch.Tensor, keep: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """x: (n, dim) -> images (n, 3, 112, 112) clamped to [-1, 1], as the writer stores them."""
    latent, _ = model.forward_encoder(x, keep, mask)
    _, z = model.forward_decoder(latent, keep, mask)
    return model.im_decoder(z).float().clamp(-1.0, 1.0)


def _score(
    images: torch.Tensor,
    identity: torch.Tensor,
    fr_model: nn.Module,
    estimator: nn.Module | None,
    s: AttrOPSettings,
) -> dict[str, torch.Tensor]:
    """Per-item terms, each (n,): id_loss, quality, yaw (NaN when unused), loss and passed."""
    feats = fr_model(images).float()
    if feats.ndim != 2 or feats.shape[1] != identity.shape[1]:
        raise Vec2FaceError(
            f"AttrOP: the FR model gives features of shape {tuple(feats.shape)}, the identity "
            f"vectors have dimension {identity.shape[1]}"
        )
    id_loss = 1.0 - F.cosine_similarity(feats, identity, dim=1)
    loss = s.id_weight * id_loss
    passed = id_loss < s.id_threshold
    nan = torch.full_like(id_loss, float("nan"))
    quality, yaw = nan, nan
    if s.needs:
        attrs = estimator(images)
        if s.quality_target is not None:
            quality = attrs["quality"].float()
            hinge = torch.relu(s.quality_target - quality)
            loss = loss + hinge
            passed &= hinge < s.quality_tolerance
        if s.yaw_target is not None:
            yaw = attrs["yaw"].float()
            error = (s.yaw_target - yaw.abs()).abs()
            loss = loss + error
            passed &= error < s.yaw_tolerance
    return {"id_loss": id_loss, "quality": quality, "yaw": yaw, "loss": loss, "passed": passed}


def _run_chunk(
    model: Vec2FaceGenerator,
    x0: torch.Tensor,
    identity: torch.Tensor,
    keep: torch.Tensor,
    mask: torch.Tensor,
    fr_model: nn.Module,
    estimator: nn.Module | None,
    s: AttrOPSettings,
    record_history: bool,
) -> AttrOPResult:
    """AttrOP on one chunk; all tensors already on the model's device."""
    n = x0.shape[0]
    # Adam runs on u = x / rms(x0); the generator sees x = u * rms
    rms = x0.norm(dim=1, keepdim=True) / math.sqrt(x0.shape[1])
    u = x0 / rms
    exp_avg = torch.zeros_like(u)
    exp_avg_sq = torch.zeros_like(u)
    steps = torch.zeros(n, dtype=torch.long, device=u.device)
    final = {k: torch.full((n,), float("nan"), device=u.device) for k in _TERMS}
    converged = torch.zeros(n, dtype=torch.bool, device=u.device)
    active = torch.arange(n, device=u.device)
    history = (
        {k: np.full((s.max_steps + 1, n), np.nan, np.float32) for k in _TERMS}
        if record_history
        else None
    )
    for step in range(s.max_steps + 1):
        ua = u[active].requires_grad_(True)
        with torch.autocast(u.device.type, dtype=torch.bfloat16, enabled=s.bf16):
            images = _render(model, ua * rms[active], keep[active], mask[active])
            terms = _score(images, identity[active], fr_model, estimator, s)
        if not bool(torch.isfinite(terms["loss"]).all()):
            bad = active[~torch.isfinite(terms["loss"])][:5].tolist()
            raise Vec2FaceError(f"AttrOP: non-finite loss at step {step} (items {bad})")
        for k in _TERMS:
            final[k][active] = terms[k].detach()
            if history is not None:
                history[k][step, active.cpu().numpy()] = terms[k].detach().float().cpu().numpy()
        passed = terms["passed"]
        converged[active[passed]] = True
        if step == s.max_steps or bool(passed.all()):
            break
        (grad,) = torch.autograd.grad(terms["loss"].sum(), ua)
        # Adam, with torch.optim.Adam's arithmetic, on the rows still running. Their moments
        # are their own; their step count is this loop's, since a row that is still running
        # has been updated at every step so far.
        go = active[~passed]
        g = grad[~passed].float()
        steps[go] += 1
        t = step + 1
        m = exp_avg[go].lerp_(g, 1 - _BETA1)
        v = exp_avg_sq[go].mul_(_BETA2).addcmul_(g, g, value=1 - _BETA2)
        denom = (v.sqrt() / math.sqrt(1 - _BETA2**t)).add_(_EPS)
        u[go] = u[go].addcdiv_(m, denom, value=-s.lr / (1 - _BETA1**t))
        exp_avg[go], exp_avg_sq[go] = m, v
        active = go
    return AttrOPResult(
        vectors=(u * rms).detach().float().cpu().numpy(),
        steps=steps.cpu().numpy(),
        id_loss=final["id_loss"].float().cpu().numpy(),
        quality=final["quality"].float().cpu().numpy(),
        yaw=final["yaw"].float().cpu().numpy(),
        converged=converged.cpu().numpy(),
        settings=s,
        history=history,
    )


def attrop(
    generator: Vec2FaceGenerator,
    vectors: torch.Tensor | np.ndarray,
    fr_model: nn.Module,
    *,
    identity: torch.Tensor | np.ndarray | None = None,
    estimator: nn.Module | None = None,
    settings: AttrOPSettings = AttrOPSettings(),
    masks: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    record_history: bool = False,
    progress: _Progress | None = None,
) -> AttrOPResult:
    """Optimise generator inputs toward their identity and the attribute targets.

    Args:
        generator: the frozen generator (its device is used; it runs in eval mode and its
            mode is restored afterwards).
        vectors: (N, rep_dim) starting input vectors.
        fr_model: (n, 3, 112, 112) images in [-1, 1] -> (n, rep_dim) features; frozen.
        identity: (N, rep_dim) the vectors whose identity each image must keep (default:
            ``vectors`` itself, as in identity refinement).
        estimator: an :class:`~vec2face.attributes.AttributeEstimator` (differentiable,
            ``{attribute: (n,)}``); needed when ``settings`` has a quality or yaw target.
        settings: targets, thresholds, budget and learning rate.
        masks: fixed token masks ``(keep_idx (N, K), mask (N, 49))`` (see
            ``Vec2FaceGenerator.draw_masks``); by default drawn once from ``seed`` with the
            generator's generation masking.
        seed: seed of the default masks.
        batch_size: items optimised together (default: all N at once).
        record_history: keep every evaluation in ``result.history``.
        progress: a tqdm-like bar advanced by the items of each finished chunk.

    Returns:
        An :class:`AttrOPResult`. Items that hit the budget are counted in
        ``result.report()`` (and logged as a warning) with their shortfall.

    Raises:
        Vec2FaceError: wrong shapes, NaN/inf or zero identity vectors, mask shapes that do not
            fit, FR features of another dimension, or a non-finite loss (naming the step).
        ConfigError: a target without an estimator that provides it, batch_size < 1.
    """
    dim = generator.arch.rep_dim
    x0 = _as_matrix(vectors, dim, "vectors")
    ident = x0 if identity is None else _as_matrix(identity, dim, "identity vectors")
    n = x0.shape[0]
    if ident.shape[0] != n:
        raise Vec2FaceError(f"AttrOP: {ident.shape[0]} identity vectors for {n} input vectors")
    zero = torch.nonzero(ident.norm(dim=1) == 0).flatten()
    if zero.numel():
        raise Vec2FaceError(f"AttrOP: zero identity vectors (rows {zero[:5].tolist()})")
    _check_estimator(estimator, settings)
    if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
        raise ConfigError(f"AttrOP batch_size must be >= 1, got {batch_size!r}")
    if masks is None:
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        masks = generator.draw_masks(n, generator.gen_masking, g, "cpu")
    keep, mask = _check_masks(masks, n, generator)

    device = generator.latent_prior_proj_f.weight.device
    nets = [generator, fr_model] + ([estimator] if estimator is not None else [])
    modes = [net.training for net in nets]
    chunk = batch_size or n
    parts = []
    try:
        for net in nets:
            net.eval()
        with torch.inference_mode(False), torch.enable_grad():
            for s in range(0, n, chunk):
                e = min(s + chunk, n)
                parts.append(
                    _run_chunk(
                        generator,
                        x0[s:e].to(device),
                        ident[s:e].to(device),
                        keep[s:e].to(device),
                        mask[s:e].to(device),
                        fr_model,
                        estimator,
                        settings,
                        record_history,
                    )
                )
                if progress is not None:
                    progress.update(e - s)
    finally:
        for net, mode in zip(nets, modes, strict=True):
            net.train(mode)
    result = AttrOPResult.concat(parts)
    if not result.converged.all():
        rep = result.report()
        log.warning(
            "AttrOP: %d of %d items hit the %d-step budget; shortfall %s",
            rep["hit_budget"],
            n,
            settings.max_steps,
            rep["shortfall"],
        )
    return result


def refinement_masks(
    generator: Vec2FaceGenerator, seed: int, identity_indices: Sequence[int] | np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed token mask per identity, seeded by ``(seed, global identity index)``.

    Returns:
        keep_idx (k, K) long and mask (k, 49) bool, on the CPU.
    """
    keeps, masks = [], []
    for idx in identity_indices:
        g = torch.Generator(device="cpu").manual_seed(derive_seed("attrop-refine", seed, int(idx)))
        keep, mask = generator.draw_masks(1, generator.gen_masking, g, "cpu")
        keeps.append(keep)
        masks.append(mask)
    return torch.cat(keeps), torch.cat(masks)


def refine_identities(
    generator: Vec2FaceGenerator,
    identities: torch.Tensor | np.ndarray,
    fr_model: nn.Module,
    *,
    max_steps: int = 100,
    lr: float = 0.1,
    id_threshold: float = 0.3,
    seed: int = 0,
    identity_indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 64,
    bf16: bool = False,
    progress: _Progress | None = None,
) -> AttrOPResult:
    """Identity refinement: move each identity vector until the FR feature of its
    image matches the original vector (the id term only).

    Each identity gets one fixed mask seeded by ``(seed, identity_indices[i])``, so the
    result for an identity does not depend on which batch or shard it is in.

    Args:
        generator: the frozen generator.
        identities: (k, rep_dim) identity vectors (also the id targets).
        fr_model: the FR model whose features the generator was trained on (the teacher).
        max_steps: step budget per identity.
        lr: Adam learning rate.
        id_threshold: stop when ``1 - cos`` is below it.
        seed: the masks' seed.
        identity_indices: (k,) global indices of the rows (default ``0..k-1``).
        batch_size: identities optimised together.
        bf16: bfloat16 autocast.
        progress: a tqdm-like bar advanced by identities.

    Returns:
        An :class:`AttrOPResult`; ``result.vectors`` are the refined identity vectors.
    """
    settings = AttrOPSettings(
        max_steps=max_steps,
        lr=lr,
        id_threshold=id_threshold,
        quality_target=None,
        yaw_target=None,
        bf16=bf16,
    )
    k = len(identities)
    indices = np.arange(k) if identity_indices is None else np.asarray(identity_indices)
    if indices.shape != (k,):
        raise Vec2FaceError(
            f"refine_identities: identity_indices must have shape ({k},), got {indices.shape}"
        )
    masks = refinement_masks(generator, seed, indices) if k else None
    return attrop(
        generator,
        identities,
        fr_model,
        settings=settings,
        masks=masks,
        batch_size=batch_size,
        progress=progress,
    )
