"""Batched, deterministic renderer of the procedural faces: parameters -> 112x112 RGB.

The head is an ellipsoid whose width is warped along its height (cheekbones, jaw,
chin), ray-cast per pixel after rotation by yaw, pitch and roll, and shaded from the
image's light direction. Nose and ears are separate ellipsoids; hair is a region of
the head surface plus a volume shell around it; eyes, brows, mouth and marks are drawn
on the head surface in its own coordinates, so they foreshorten and hide with the
turn. Small parts are computed in per-image windows to keep the cost down.

All maps are float32 ``(B, H, W)``; colours are kept as three such maps until the end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np
from PIL import Image, ImageFilter

import vec2face.toyfaces._features as feat
from vec2face.toyfaces._geometry import F32
from vec2face.toyfaces._scene import IMAGE_SIZE, Canvas, Cols, Scene
from vec2face.toyfaces._textures import TILE, textures
from vec2face.toyfaces.identity import IDENTITY_FIELDS
from vec2face.toyfaces.nuisance import NUISANCE_FIELDS

_CHUNK = 8
_MAX_BATCH = 256


@functools.cache
def _keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks instead of returning them to the OS.

    Rendering creates and frees hundreds of ~400 KB temporaries per chunk; with the
    default thresholds glibc hands each back to the kernel and the next one page-faults
    in again, which costs about a fifth of the render time. The process keeps at most
    its peak use (tens of MB). A no-op (False) where glibc's ``mallopt`` is absent.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
    return mallopt(m_trim_threshold, 256 * 1024 * 1024) == 1 and ok


def render_faces(identity: np.ndarray, nuisance: np.ndarray) -> np.ndarray:
    """Render a batch of faces.

    Args:
        identity: identity rows, float (B, len(IDENTITY_FIELDS)).
        nuisance: nuisance rows, float (B, len(NUISANCE_FIELDS)).

    Returns:
        uint8 (B, 112, 112, 3) RGB; the same rows always give the same bytes.

    Raises:
        ValueError: the arrays have the wrong shape.
    """
    identity = np.ascontiguousarray(identity, dtype=F32)
    nuisance = np.ascontiguousarray(nuisance, dtype=F32)
    if identity.ndim != 2 or identity.shape[1] != len(IDENTITY_FIELDS):
        raise ValueError(
            f"identity must have shape (B, {len(IDENTITY_FIELDS)}), got {identity.shape}"
        )
    if nuisance.ndim != 2 or nuisance.shape[1] != len(NUISANCE_FIELDS):
        raise ValueError(
            f"nuisance must have shape (B, {len(NUISANCE_FIELDS)}), got {nuisance.shape}"
        )
    if len(identity) != len(nuisance):
        raise ValueError(f"identity has {len(identity)} rows but nuisance has {len(nuisance)}")
    n = len(identity)
    if n == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    if n > _MAX_BATCH:  # bound the memory of the per-pixel maps (about 0.5 MB an image)
        parts = [
            render_faces(identity[i : i + _MAX_BATCH], nuisance[i : i + _MAX_BATCH])
            for i in range(0, n, _MAX_BATCH)
        ]
        return np.concatenate(parts)
    _keep_freed_memory()
    ip = Cols(identity, IDENTITY_FIELDS)
    nu = Cols(nuisance, NUISANCE_FIELDS)
    sc = Scene(ip, nu)
    S = IMAGE_SIZE
    canvas = Canvas(np.empty((n, S, S), F32), [np.empty((n, S, S), F32) for _ in range(3)])
    sc.q = tuple(np.empty((n, S, S), F32) for _ in range(3))
    sc.head_vis = np.empty((n, S, S), F32)
    sc.head_lit = np.empty((n, S, S), F32)
    # Full-frame layers run in small chunks, which keeps every (b, H, W) map in the CPU
    # cache and doubles numpy's speed; windowed parts run on the whole batch at once,
    # where numpy's per-call overhead is spread over more images.
    chunks = []
    for start in range(0, n, _CHUNK):
        sl = slice(start, start + _CHUNK)
        sub = Scene(Cols(identity[sl], IDENTITY_FIELDS), Cols(nuisance[sl], NUISANCE_FIELDS))
        view = Canvas(canvas.z[sl], [c[sl] for c in canvas.rgb])
        sub.background(view)
        sub.body(view)
        sub.head(view)
        for full, part in zip(sc.q, sub.q):
            full[sl] = part
        sc.head_vis[sl] = sub.head_vis
        sc.head_lit[sl] = sub.head_lit
        del sub.q, sub.head_vis, sub.head_lit  # the shell below does not need them
        chunks.append((sub, view))
    feat.draw_eyes(sc, canvas)
    feat.draw_mouth(sc, canvas)
    feat.draw_moles(sc, canvas)
    for sub, view in chunks:
        sub.hair_shell(view)
    feat.draw_ears(sc, canvas)
    feat.draw_nose(sc, canvas)
    feat.draw_glasses(sc, canvas)
    feat.draw_occluders(sc, canvas)
    return _finish(canvas, nu)


def render_face(identity_row: np.ndarray, nuisance_row: np.ndarray) -> np.ndarray:
    """Render one face: rows (P,) and (Q,) -> uint8 (112, 112, 3)."""
    return render_faces(np.asarray(identity_row)[None], np.asarray(nuisance_row)[None])[0]




def _finish(canvas: Canvas, nu: Cols) -> np.ndarray:
    """Blur (PIL, per image), sensor noise from the texture bank, quantise to uint8."""
    n, S = canvas.z.shape[0], IMAGE_SIZE
    rgb = np.stack(canvas.rgb, axis=-1)  # (B, H, W, 3)
    rgb *= 255.0
    blur = nu.blur
    for i in np.nonzero(blur >= 0.3)[0]:
        img = Image.fromarray(np.clip(rgb[i] + 0.5, 0, 255).astype(np.uint8))
        img = img.filter(ImageFilter.GaussianBlur(float(blur[i])))
        rgb[i] = np.asarray(img, dtype=F32)
    bank = textures()["noise"]
    span = TILE - S
    seeds = (nu.noise_seed * 1e6).astype(np.int64)
    for i in range(n):
        if nu.noise[i] <= 0.05:
            continue
        oy, ox, ch = seeds[i] % span, (seeds[i] // span) % span, (seeds[i] // (span * span)) % 3
        patch = bank[[(ch + k) % 3 for k in range(3)], oy : oy + S, ox : ox + S].transpose(1, 2, 0)
        rgb[i] += patch * nu.noise[i]
    rgb += 0.5
    np.clip(rgb, 0.0, 255.0, out=rgb)
    return rgb.astype(np.uint8)
