"""The Vec2Face generator: a feature-masked autoencoder (fMAE) plus a VQGAN-style image decoder.

A 512-d FR feature vector becomes a 7x7 token map, a ViT encoder/decoder pair refines the
partly masked map, and a convolutional decoder turns it into a 112x112 RGB face (Wu et al.,
"Vec2Face", ICLR 2025, section 3 and its public code). Module names match the official
``MaskedGenerativeEncoderViT`` so that the released ``vec2face_generator.pth`` loads with the
same names and shapes; the two official modules its forward never uses (``patch_embed``,
``center_token``) are not built here and are reported as ignored on load.

Reading order: architecture and masking settings, the model (``__init__``, weight init,
masking, encoder, decoder, ``forward``, ``generate``), the registry, checkpoints.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn

from vec2face.errors import ConfigError, Vec2FaceError
from vec2face.models._registry import create, list_models, register
from vec2face.models.vqgan_decoder import Decoder
from vec2face.utils.io import load_torch_safely, save_torch_atomic

log = logging.getLogger(__name__)

GRID = 7
NUM_TOKENS = GRID * GRID  # feature tokens; the class token makes 50
#: eigenvalues below this fraction of the largest count as directions the data does not span
RANK_TOLERANCE = 1e-7
CPU_DECODE_CHUNK = 4  # images per image-decoder call when generating on CPU (see generate)
CHECKPOINT_KEY = "model_vec2face"
# Official modules that exist in the released state dict but never enter its forward.
IGNORED_OFFICIAL_PREFIXES = ("patch_embed.", "center_token.")


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorArch:
    """Architecture of a Vec2Face generator (shapes only; masking lives in MaskingConfig).

    The decoder width must equal the encoder width: the token loss compares decoder tokens with
    the encoder-width feature tokens (all official sizes use equal widths).
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    decoder_embed_dim: int
    decoder_depth: int
    decoder_num_heads: int
    mlp_ratio: float = 4.0
    rep_dim: int = 512
    dropout: float = 0.1
    attn_dropout: float = 0.1
    z_channels: int = 256
    dec_ch: int = 128
    dec_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    dec_num_res_blocks: int = 2
    # GroupNorm groups of the image decoder. The official 32 puts 4 channels in a group at its
    # finest (128-channel) level; at 32 channels a level of 32 groups is an instance norm,
    # which strips every channel of its per-image mean and contrast (an image's overall
    # tone) at every block.
    dec_norm_groups: int = 32
    # Factor on the input vectors before ``latent_prior_proj_f``. Our features are
    # L2-normalised (components ~1/sqrt(512)); the official model takes raw ArcFace
    # features, whose components have unit variance (its training loader notes mean 0.0046,
    # std 0.967 on WebFace: a norm of ~22) and never normalises them. sqrt(512) maps ours to
    # that scale, so the paper sizes (and the official checkpoint) see the inputs they were
    # trained on; the tiny profile sets it too (at 1.0 a tiny model trained for minutes
    # learned to ignore a ~0.05 signal beside the position embeddings). 1.0 is for callers
    # that pass raw, unnormalised features.
    vector_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.decoder_embed_dim != self.embed_dim:
            raise ConfigError(
                f"generator arch '{self.name}': decoder_embed_dim {self.decoder_embed_dim} must equal "
                f"embed_dim {self.embed_dim} (the token loss compares the two)"
            )
        for width, heads, what in (
            (self.embed_dim, self.num_heads, "num_heads"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder_num_heads"),
        ):
            if heads <= 0 or width % heads:
                raise ConfigError(
                    f"generator arch '{self.name}': {what} {heads} does not divide width {width}"
                )
        if len(self.dec_ch_mult) < 1 or min(self.dec_ch_mult) <= 0:
            raise ConfigError(f"generator arch '{self.name}': dec_ch_mult must be positive ints")
        if self.dec_norm_groups <= 0 or any((self.dec_ch * m) % self.dec_norm_groups for m in self.dec_ch_mult):
            raise ConfigError(
                f"generator arch '{self.name}': dec_ch * dec_ch_mult must be multiples of "
                f"dec_norm_groups {self.dec_norm_groups} (GroupNorm)"
            )

    @property
    def image_size(self) -> int:
        """Output side length: the 7x7 grid doubled once per decoder level but the last."""
        return GRID * 2 ** (len(self.dec_ch_mult) - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples as lists), fit for a ``weights_only`` checkpoint."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorArch:
        """Inverse of :meth:`to_dict`; unknown keys are a ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"generator arch: unknown fields {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class MaskingConfig:
    """Mask ratio ~ truncated normal on [ratio_min, ratio_max]; ``ceil(49*ratio_min)`` tokens dropped.

    Masked tokens are replaced by the projected input vector; the lowest-noise
    ``ceil(49 * ratio_min)`` of them are also dropped from the encoder input.
    """

    ratio_min: float
    ratio_mu: float
    ratio_max: float = 1.0
    ratio_std: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio_min <= self.ratio_max <= 1.0:
            raise ConfigError(
                f"masking: need 0 <= ratio_min <= ratio_max <= 1, got {self.ratio_min}, {self.ratio_max}"
            )
        if self.ratio_std <= 0:
            raise ConfigError(f"masking: ratio_std must be > 0, got {self.ratio_std}")

    @property
    def num_dropped(self) -> int:
        return math.ceil(NUM_TOKENS * self.ratio_min)

    def sample_ratios(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """n ratios from the truncated normal by inverse-CDF sampling: (n,) float64."""
        phi = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
        lo = phi((self.ratio_min - self.ratio_mu) / self.ratio_std)
        hi = phi((self.ratio_max - self.ratio_mu) / self.ratio_std)
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        ratios = self.ratio_mu + self.ratio_std * torch.special.ndtri(lo + u * (hi - lo))
        return ratios.clamp(self.ratio_min, self.ratio_max)


TRAIN_MASKING = MaskingConfig(ratio_min=0.5, ratio_mu=0.75, ratio_max=1.0, ratio_std=0.25)
GENERATION_MASKING = MaskingConfig(ratio_min=0.1, ratio_mu=0.15, ratio_max=1.0, ratio_std=0.25)


@dataclass
class GeneratorOutput:
    """What one forward pass hands the training engine.

    Attributes:
        images: (N, 3, 112, 112) unclamped RGB (training regresses it onto [-1, 1] targets).
        tokens: (N, 49, D) decoder tokens after ``decoder_norm``, class token excluded.
        target_tokens: (N, 49, D) feature tokens before masking, detached (token-loss target).
        mask: (N, 49) bool, True where the token was masked.
    """

    images: torch.Tensor
    tokens: torch.Tensor
    target_tokens: torch.Tensor
    mask: torch.Tensor


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
class TokenEmbedding(nn.Module):
    """Learned position embeddings + LayerNorm + dropout (the official ``BertEmbeddings``)."""

    def __init__(self, dim: int, num_positions: int, dropout: float):
        super().__init__()
        self.position_embeddings = nn.Embedding(num_positions, dim)
        self.LayerNorm = nn.LayerNorm(dim, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        # Persistent so the state dict matches the official one key for key.
        self.register_buffer("position_ids", torch.arange(num_positions).expand((1, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L, D) -> (N, L, D)."""
        pos = self.position_embeddings(self.position_ids[:, : x.shape[1]])
        return self.dropout(self.LayerNorm(x + pos))


class Vec2FaceGenerator(nn.Module):
    """Feature vector (N, rep_dim) -> face image (N, 3, 112, 112).

    Args:
        arch: architecture settings.
        train_masking: masking used by ``forward`` in training mode.
        gen_masking: masking used by ``forward`` in eval mode and by ``generate``.
    """

    def __init__(
        self,
        arch: GeneratorArch,
        train_masking: MaskingConfig = TRAIN_MASKING,
        gen_masking: MaskingConfig = GENERATION_MASKING,
    ):
        super().__init__()
        self.arch = arch
        self.train_masking = train_masking
        self.gen_masking = gen_masking
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        d, dd = arch.embed_dim, arch.decoder_embed_dim

        # vector -> 50 tokens (class token + 7x7 feature map)
        self.latent_prior_proj_f = nn.Linear(arch.rep_dim, d)
        self.feature_token = nn.Linear(1, NUM_TOKENS)
        self.token_emb = TokenEmbedding(d, NUM_TOKENS + 1, arch.dropout)

        # encoder
        self.blocks = nn.ModuleList(
            Block(
                d,
                arch.num_heads,
                arch.mlp_ratio,
                qkv_bias=True,
                proj_drop=arch.dropout,
                attn_drop=arch.attn_dropout,
                norm_layer=norm_layer,
            )
            for _ in range(arch.depth)
        )
        self.norm = norm_layer(d)

        # decoder
        self.decoder_embed = nn.Linear(d, dd)
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, NUM_TOKENS + 1, dd))
        self.decoder_blocks = nn.ModuleList(
            Block(
                dd,
                arch.decoder_num_heads,
                arch.mlp_ratio,
                qkv_bias=True,
                proj_drop=arch.dropout,
                attn_drop=arch.attn_dropout,
                norm_layer=norm_layer,
            )
            for _ in range(arch.decoder_depth)
        )
        self.decoder_norm = norm_layer(dd)

        # image decoder
        self.im_decoder_proj = nn.Linear(dd, arch.z_channels)
        self.im_decoder = Decoder(
            ch=arch.dec_ch,
            ch_mult=arch.dec_ch_mult,
            num_res_blocks=arch.dec_num_res_blocks,
            z_channels=arch.z_channels,
            out_ch=3,
            norm_groups=arch.dec_norm_groups,
        )
        self.initialize_weights()
        # The image decoder stays in the default (NCHW) memory format: its GroupNorm backward
        # on channels-last tensors took two thirds of a tiny CPU training step (2.1x slower
        # steps). Generation on CPU feeds it channels-last maps instead (see ``generate``).

    def initialize_weights(self) -> None:
        """Official init: xavier-uniform linears with zero bias, N(0, 0.02) position embeddings."""
        nn.init.normal_(self.token_emb.position_embeddings.weight, std=0.02)
        nn.init.normal_(self.decoder_pos_embed_learned, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @torch.no_grad()
    def init_input_whitening(self, features: torch.Tensor, eps: float = 1e-5) -> dict[str, float]:
        """Data-dependent init of ``latent_prior_proj_f``: PCA-whiten the input vectors.

        Sets the projection so that, on ``features``, its outputs are the training vectors'
        leading principal coordinates, each with unit variance and zero mean:
        ``W = diag(lambda_k + eps * mean(lambda)) ** -1/2 U_k^T``, ``b = -W m`` over the
        ``min(D, rep_dim)`` largest eigenpairs of the covariance of ``vector_scale * features``
        (fewer if the features span fewer directions); the other rows (wider models) keep
        their initialisation. The forward pass, the module and its shapes are unchanged: this
        is an initialisation only.

        Why: after the vector projection every token is a scaled copy of one vector, so the
        encoder sees the input only through LayerNorms of that vector. A small FR teacher's
        features are far from isotropic (the toy teacher's covariance eigenvalues run from 32
        down to 3e-4 with a median of 0.0045, ten directions holding half the variance); under
        the default initialisation the directions that carry the details reach the network
        ~100x weaker than the leading ones and are learned that much more slowly (Adam
        training a linear feature-to-pixel map: test MSE 0.137 after 1,000 steps on the raw
        vectors, 0.095 on whitened ones; the closed-form ridge optimum is 0.083).

        Args:
            features: (N, rep_dim) training vectors as the model receives them (before
                ``vector_scale``), N > rep_dim preferably.
            eps: eigenvalue floor, relative to the mean eigenvalue.

        Returns:
            Spectrum figures: ``top10_share`` (variance share of the 10 leading directions),
            ``condition`` (largest / smallest kept eigenvalue), ``kept`` (directions set).
        """
        if features.ndim != 2 or features.shape[1] != self.arch.rep_dim:
            raise ConfigError(
                f"init_input_whitening: features must be (N, {self.arch.rep_dim}), got "
                f"{tuple(features.shape)}"
            )
        if features.shape[0] < 2 or not torch.isfinite(features).all():
            raise ConfigError(
                "init_input_whitening: need at least 2 finite feature vectors, got "
                f"{features.shape[0]}"
            )
        x = features.double() * self.arch.vector_scale
        mean = x.mean(0)
        cov = torch.cov(x.T)  # centres the data itself
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
        # Only directions the data actually spans (fewer than rep_dim when N <= rep_dim).
        spanned = int((evals > RANK_TOLERANCE * evals[0]).sum())
        kept = min(self.arch.embed_dim, self.arch.rep_dim, spanned)
        floor = eps * float(evals.mean())
        weight = (evecs[:, :kept] / (evals[:kept] + floor).sqrt()).T  # (kept, rep_dim)
        proj = self.latent_prior_proj_f
        proj.weight[:kept] = weight.to(proj.weight.dtype)
        proj.bias[:kept] = (-weight @ mean).to(proj.bias.dtype)
        return {
            "top10_share": float(evals[:10].sum() / evals.sum()),
            "condition": float((evals[0] + floor) / (evals[kept - 1] + floor)),
            "kept": float(kept),
        }

    def last_layer(self) -> torch.Tensor:
        """The image decoder's output conv weight (where the adaptive GAN weight is measured)."""
        return self.im_decoder.conv_out.weight

    # ---------------------------------------------------------------------------------------
    def draw_masks(
        self,
        n: int,
        masking: MaskingConfig,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random token masks, one mask ratio per sample.

        The official code draws one ratio per batch; a ratio per sample has the same marginal
        distribution and makes ``generate`` independent of the batch size. One argsort per row
        ranks the noise; ranks are unique, so the official re-draw loop for ties is not needed.

        Returns:
            keep_idx: (n, 50 - num_dropped) long, token positions fed to the encoder, class
                token (position 0) first.
            mask: (n, 49) bool, True for masked feature tokens (a superset of the dropped ones).
        """
        draw_device = generator.device if generator is not None else device
        ratios = masking.sample_ratios(n, generator, draw_device)
        noise = torch.rand(n, NUM_TOKENS, generator=generator, device=draw_device)
        num_masked = torch.ceil(ratios * NUM_TOKENS).long().clamp(masking.num_dropped, NUM_TOKENS)
        order = noise.argsort(dim=1)  # lowest noise first: dropped, then masked, then kept
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(NUM_TOKENS, device=draw_device).expand(n, -1)
        )
        mask = rank < num_masked.unsqueeze(1)
        keep_idx = torch.cat(
            [
                torch.zeros(n, 1, dtype=torch.long, device=draw_device),
                order[:, masking.num_dropped :] + 1,
            ],
            dim=1,
        )
        return keep_idx.to(device), mask.to(device)

    def forward_encoder(
        self, vectors: torch.Tensor, keep_idx: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed the vector as 50 tokens, mask, drop, encode.

        Args:
            vectors: (N, rep_dim).
            keep_idx: (N, K) positions to keep (see ``draw_masks``).
            mask: (N, 49) bool.

        Returns:
            latent: (N, K, D) encoder output.
            target_tokens: (N, 49, D) unmasked feature tokens, detached.
        """
        if self.arch.vector_scale != 1.0:
            vectors = vectors * self.arch.vector_scale
        enc = self.latent_prior_proj_f(vectors)  # (N, D)
        tokens = self.feature_token(enc.unsqueeze(-1)).transpose(1, 2)  # (N, 49, D)
        target_tokens = tokens.detach()
        tokens = torch.where(mask.unsqueeze(-1), enc.unsqueeze(1), tokens)
        x = self.token_emb(torch.cat([enc.unsqueeze(1), tokens], dim=1))  # (N, 50, D)
        x = x.gather(1, keep_idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), target_tokens

    def forward_decoder(
        self, latent: torch.Tensor, keep_idx: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refill dropped/masked slots with the first token, decode, project to a 7x7 map.

        Args:
            latent: (N, K, D) encoder output.
            keep_idx: (N, K) positions of ``latent``'s tokens among the 50.
            mask: (N, 49) bool.

        Returns:
            tokens: (N, 49, D_dec) normalised decoder tokens, class token excluded.
            z: (N, z_channels, 7, 7) input of the image decoder (contiguous NCHW).
        """
        x = self.decoder_embed(latent)  # (N, K, Dd)
        n, _, dd = x.shape
        first = x[:, :1]
        full = first.expand(-1, NUM_TOKENS + 1, -1).scatter(
            1, keep_idx.unsqueeze(-1).expand(-1, -1, dd), x
        )
        masked = torch.cat([mask.new_zeros(n, 1), mask], dim=1).unsqueeze(-1)
        x = torch.where(masked, first, full) + self.decoder_pos_embed_learned
        for blk in self.decoder_blocks:
            x = blk(x)
        tokens = self.decoder_norm(x)[:, 1:]
        z = self.im_decoder_proj(tokens).reshape(n, GRID, GRID, -1).permute(0, 3, 1, 2).contiguous()
        return tokens, z

    def forward(
        self, vectors: torch.Tensor, generator: torch.Generator | None = None
    ) -> GeneratorOutput:
        """vectors: (N, rep_dim) -> GeneratorOutput; masking from ``train_masking`` in training
        mode, ``gen_masking`` in eval mode, randomness from ``generator`` (or the global RNG)."""
        masking = self.train_masking if self.training else self.gen_masking
        keep_idx, mask = self.draw_masks(vectors.shape[0], masking, generator, vectors.device)
        latent, target_tokens = self.forward_encoder(vectors, keep_idx, mask)
        tokens, z = self.forward_decoder(latent, keep_idx, mask)
        return GeneratorOutput(self.im_decoder(z), tokens, target_tokens, mask)

    # ---------------------------------------------------------------------------------------
    def generate(
        self,
        vectors: torch.Tensor | np.ndarray,
        seed: int = 0,
        batch_size: int = 64,
        autocast_bf16: bool = False,
        masking: MaskingConfig | None = None,
    ) -> torch.Tensor:
        """Images for ``vectors``, reproducible for a seed and independent of ``batch_size``.

        Runs in eval mode under ``torch.inference_mode``; all masks are drawn up front from one
        CPU ``torch.Generator`` seeded with ``seed``.

        Args:
            vectors: (N, rep_dim) feature vectors.
            seed: seed of this call's randomness.
            batch_size: vectors per forward pass.
            autocast_bf16: run under bfloat16 autocast (output still float32).
            masking: masking override (default ``gen_masking``).

        Returns:
            (N, 3, 112, 112) float32 images in [-1, 1], on the model's device.

        Raises:
            Vec2FaceError: empty batch, wrong vector dimension, NaN/inf values, batch_size < 1.
        """
        vectors = self._check_vectors(vectors)
        masking = masking or self.gen_masking
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        keep_all, mask_all = self.draw_masks(vectors.shape[0], masking, g, "cpu")
        out = [
            images
            for _, images in self.iter_generate(
                vectors, keep_all, mask_all, batch_size, autocast_bf16
            )
        ]
        return torch.cat(out).contiguous()

    def iter_generate(
        self,
        vectors: torch.Tensor,
        keep_all: torch.Tensor,
        mask_all: torch.Tensor,
        batch_size: int = 64,
        autocast_bf16: bool = False,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Images for ``vectors`` under given token masks, a batch at a time.

        The fast inference path behind :meth:`generate`, for callers that draw their own
        masks (the HSFace writer draws them per identity) or consume images as they come.

        Args:
            vectors: (N, rep_dim) float32 feature vectors (already checked).
            keep_all: (N, K) long, mask_all: (N, 49) bool (see :meth:`draw_masks`), any device.
            batch_size: vectors per forward pass.
            autocast_bf16: run in bfloat16 (output still float32).

        Yields:
            (start, images): the batch's first row and its (B, 3, 112, 112) float32 images
            in [-1, 1] on the model's device.

        Raises:
            Vec2FaceError: batch_size < 1.
        """
        if batch_size < 1:
            raise Vec2FaceError(f"generate: batch_size must be >= 1, got {batch_size}")
        device = self.latent_prior_proj_f.weight.device
        was_training = self.training
        self.eval()
        # On CPU, bf16 runs on a cached bf16 copy of the weights rather than under autocast:
        # autocast casts every fp32 weight again at every forward pass, which took ~40% of
        # a paper-size batch of 8 here. On CUDA, autocast is the fast path.
        net, dtype, amp = self, torch.float32, autocast_bf16
        if autocast_bf16 and device.type == "cpu":
            net, dtype, amp = self._bf16_twin(), torch.bfloat16, False
        try:
            for s in range(0, vectors.shape[0], batch_size):
                # the context is re-entered per batch: a consumer's own work between batches
                # (JPEG encoding, writing) must not run under inference mode or autocast
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp),
                ):
                    v = vectors[s : s + batch_size].to(device, dtype, non_blocking=True)
                    keep = keep_all[s : s + batch_size].to(device, non_blocking=True)
                    mask = mask_all[s : s + batch_size].to(device, non_blocking=True)
                    latent, _ = net.forward_encoder(v, keep, mask)
                    _, z = net.forward_decoder(latent, keep, mask)
                    chunks: tuple[torch.Tensor, ...] = (z,)
                    if device.type == "cpu":
                        # oneDNN convolutions run natively on NHWC; NCHW maps are reordered
                        # at every layer (the paper-size decoder ran ~20% faster so in fp32,
                        # ~15% in bf16: bench/bench_generator.py). A few images at a time
                        # keep the decoder's 112x112 maps in cache (paper size, 2 threads:
                        # 4 images ran 12% faster than 8 in fp32, 17% in bf16).
                        chunks = z.contiguous(memory_format=torch.channels_last).split(
                            CPU_DECODE_CHUNK
                        )
                    images = torch.cat(
                        [net.im_decoder(zc).float().clamp_(-1.0, 1.0) for zc in chunks]
                    )
                yield s, images.contiguous()
        finally:
            self.train(was_training)

    def _bf16_twin(self) -> Vec2FaceGenerator:
        """An eval-mode bf16 copy of this model, rebuilt whenever a weight has changed.

        Tensor ``_version`` counters move with every in-place update (optimiser steps,
        ``load_state_dict``), so a stale copy is never used. Its image decoder's weights are
        channels-last, like the maps ``generate`` feeds it on CPU.
        """
        stamp = tuple((p.data_ptr(), p._version) for p in self.state_dict().values())
        cached = self.__dict__.get("_bf16_cache")
        if cached is None or cached[0] != stamp:
            self.__dict__.pop("_bf16_cache", None)  # free the old copy before making one
            twin = copy.deepcopy(self).to(torch.bfloat16).eval()
            twin.im_decoder.to(memory_format=torch.channels_last)
            for p in twin.parameters():
                p.requires_grad_(False)
            # kept outside _modules: the copy is not part of this model's state dict
            self.__dict__["_bf16_cache"] = (stamp, twin)
        return self.__dict__["_bf16_cache"][1]

    def _check_vectors(self, vectors: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(vectors, np.ndarray):
            vectors = torch.from_numpy(vectors)
        if not isinstance(vectors, torch.Tensor):
            raise Vec2FaceError(
                f"generate: vectors must be a tensor or numpy array, got {type(vectors).__name__}"
            )
        if vectors.ndim != 2 or vectors.shape[1] != self.arch.rep_dim:
            raise Vec2FaceError(
                f"generate: vectors must have shape (N, {self.arch.rep_dim}), got {tuple(vectors.shape)}"
            )
        if vectors.shape[0] == 0:
            raise Vec2FaceError("generate: empty batch of vectors")
        if not vectors.is_floating_point():
            vectors = vectors.float()
        finite = torch.isfinite(vectors).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten()[:5].tolist()
            raise Vec2FaceError(
                f"generate: vectors contain NaN/inf (rows {bad}{'...' if (~finite).sum() > 5 else ''})"
            )
        return vectors


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
#: factor from our L2-normalised 512-d features to the official raw-feature scale (see
#: GeneratorArch.vector_scale)
RAW_FEATURE_SCALE = math.sqrt(512)

ARCHS: dict[str, GeneratorArch] = {
    "vit_base_patch16": GeneratorArch(
        name="vit_base_patch16",
        vector_scale=RAW_FEATURE_SCALE,
        embed_dim=768,
        depth=12,
        num_heads=12,
        decoder_embed_dim=768,
        decoder_depth=8,
        decoder_num_heads=16,
    ),
    "vit_large_patch16": GeneratorArch(
        name="vit_large_patch16",
        vector_scale=RAW_FEATURE_SCALE,
        embed_dim=1024,
        depth=24,
        num_heads=16,
        decoder_embed_dim=1024,
        decoder_depth=8,
        decoder_num_heads=16,
    ),
    # Trains on 2 CPU cores in minutes; still five decoder levels (7 -> 112).
    "tiny": GeneratorArch(
        name="tiny",
        embed_dim=192,
        depth=4,
        num_heads=3,
        decoder_embed_dim=192,
        decoder_depth=2,
        decoder_num_heads=3,
        z_channels=64,
        dec_ch=32,
        dec_ch_mult=(1, 1, 2, 2, 4),
        dec_num_res_blocks=1,
    ),
}


def _build(name: str, overrides: dict[str, Any]) -> Vec2FaceGenerator:
    train_masking = overrides.pop("train_masking", TRAIN_MASKING)
    gen_masking = overrides.pop("gen_masking", GENERATION_MASKING)
    known = {f.name for f in dataclasses.fields(GeneratorArch)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"generator '{name}': unknown overrides {unknown}; known: {sorted(known) + ['gen_masking', 'train_masking']}"
        )
    if "dec_ch_mult" in overrides:
        overrides["dec_ch_mult"] = tuple(overrides["dec_ch_mult"])
    arch = dataclasses.replace(ARCHS[name], **overrides)
    return Vec2FaceGenerator(arch, train_masking=train_masking, gen_masking=gen_masking)


@register("generator", "vit_base_patch16")
def vit_base_patch16(**overrides: Any) -> Vec2FaceGenerator:
    """Paper size: D=768, 12 blocks, 12 heads; decoder 768, 8 blocks, 16 heads (~173.5M params)."""
    return _build("vit_base_patch16", overrides)


@register("generator", "vit_large_patch16")
def vit_large_patch16(**overrides: Any) -> Vec2FaceGenerator:
    """D=1024, 24 blocks, 16 heads; decoder 1024, 8 blocks, 16 heads."""
    return _build("vit_large_patch16", overrides)


@register("generator", "tiny")
def tiny(**overrides: Any) -> Vec2FaceGenerator:
    """CPU-sized: D=192, 4 blocks; decoder 2 blocks; conv decoder ch 32, 1 res block per level."""
    return _build("tiny", overrides)


def build_generator(name: str, **overrides: Any) -> Vec2FaceGenerator:
    """Build a registered generator; ``overrides`` replace GeneratorArch fields or the masking.

    Raises:
        ConfigError: unknown name (listing the known ones) or unknown override.
    """
    known = list_models("generator")
    if name not in known:
        raise ConfigError(f"unknown generator '{name}'; known: {', '.join(known)}")
    return create("generator", name, **overrides)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
@dataclass
class GeneratorLoadReport:
    """What ``load_generator_checkpoint`` did.

    Attributes:
        path: the checkpoint file.
        arch_name: the architecture loaded.
        official: True when the file had no ``arch`` metadata (the official release layout).
        ignored: checkpoint keys not loaded because the forward never uses them.
        epoch: the stored epoch, if any.
        metadata: the checkpoint's other plain entries (e.g. our training metadata).
        discriminator: the discriminator state a training checkpoint of ours carries
            (``model_disc``), else None.
    """

    path: str
    arch_name: str
    official: bool
    ignored: tuple[str, ...] = ()
    epoch: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    discriminator: dict[str, torch.Tensor] | None = None


def _masking_to_dict(m: MaskingConfig) -> dict[str, float]:
    return dataclasses.asdict(m)


def save_generator_checkpoint(
    model: Vec2FaceGenerator,
    path: str | os.PathLike,
    *,
    epoch: int | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``{model_vec2face, arch, masking, epoch, **extra}`` atomically.

    ``extra`` must hold plain types/tensors only (checkpoints are read with ``weights_only``).
    """
    payload: dict[str, Any] = dict(extra or {})
    payload.update(
        {
            CHECKPOINT_KEY: model.state_dict(),
            "arch": model.arch.to_dict(),
            "masking": {
                "train": _masking_to_dict(model.train_masking),
                "generation": _masking_to_dict(model.gen_masking),
            },
            "epoch": epoch,
        }
    )
    save_torch_atomic(payload, path)


def _is_plain(value: Any) -> bool:
    """JSON-like values (our metadata), as opposed to state dicts, tensors or pickled objects."""
    if isinstance(value, (int, float, str, bool, type(None))):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _short(keys: list[str], limit: int = 8) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_generator_checkpoint(
    path: str | os.PathLike,
    name: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[Vec2FaceGenerator, GeneratorLoadReport]:
    """Load our checkpoints or the official ``vec2face_generator.pth``.

    The architecture comes from ``name``, else from the file's ``arch`` metadata, else it is
    ``vit_base_patch16`` (the official release stores none). Official-only unused modules
    (``patch_embed``, ``center_token``) are ignored with a warning; every other key must match
    by name and shape.

    Returns:
        (model in eval mode, load report).

    Raises:
        ConfigError: the file does not exist, or ``name`` is unknown.
        Vec2FaceError: unreadable file, no ``model_vec2face`` entry, arch metadata that
            disagrees with ``name``, or missing / unexpected / mis-shaped tensors (named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"generator checkpoint not found: {path}")
    try:
        # Official training checkpoints pickle their argparse Namespace under 'args'.
        payload = load_torch_safely(path, map_location, safe_globals=(argparse.Namespace,))
    except ValueError as exc:
        raise Vec2FaceError(f"{path}: cannot read generator checkpoint: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get(CHECKPOINT_KEY), dict):
        raise Vec2FaceError(f"{path}: no '{CHECKPOINT_KEY}' state dict in the checkpoint")
    state: dict[str, torch.Tensor] = payload[CHECKPOINT_KEY]

    stored_arch = payload.get("arch")
    if name is not None:
        model = build_generator(name)
        if isinstance(stored_arch, dict):
            theirs = GeneratorArch.from_dict(stored_arch)
            diff = [
                f.name
                for f in dataclasses.fields(GeneratorArch)
                if f.name != "name" and getattr(theirs, f.name) != getattr(model.arch, f.name)
            ]
            if diff:
                raise Vec2FaceError(
                    f"{path}: checkpoint arch '{theirs.name}' differs from requested '{name}' in {diff}"
                )
    elif isinstance(stored_arch, dict):
        model = Vec2FaceGenerator(GeneratorArch.from_dict(stored_arch))
    else:
        model = build_generator("vit_base_patch16")
    masking = payload.get("masking")
    if isinstance(masking, dict):
        model.train_masking = MaskingConfig(**masking["train"])
        model.gen_masking = MaskingConfig(**masking["generation"])

    expected = model.state_dict()
    ignored = sorted(
        k for k in state if k.startswith(IGNORED_OFFICIAL_PREFIXES) and k not in expected
    )
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - set(ignored))
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if mismatched or missing or unexpected:
        parts = []
        if mismatched:
            parts.append(f"shape mismatches (checkpoint vs model): {_short(mismatched, 4)}")
        if missing:
            parts.append(f"missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short(unexpected)}")
        raise Vec2FaceError(
            f"{path}: checkpoint does not fit generator '{model.arch.name}': {'; '.join(parts)}"
        )
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    if ignored:
        log.warning(
            "%s: ignored %d unused official tensors: %s", path, len(ignored), ", ".join(ignored)
        )
    epoch = payload.get("epoch")
    metadata = {
        k: v
        for k, v in payload.items()
        if k not in (CHECKPOINT_KEY, "arch", "masking", "epoch") and _is_plain(v)
    }
    report = GeneratorLoadReport(
        path=path,
        arch_name=model.arch.name,
        official=not isinstance(stored_arch, dict),
        ignored=tuple(ignored),
        epoch=int(epoch) if isinstance(epoch, int) else None,
        metadata=metadata,
        # an official file's discriminator (if any) is not one of ours: never carried over
        discriminator=payload.get("model_disc") if isinstance(stored_arch, dict) else None,
    )
    return model.eval(), report
