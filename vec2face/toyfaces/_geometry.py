"""Ray casting, rotations and per-image windows for the batched face renderer.

Conventions: camera coordinates have x to the image right, y down and z toward the
viewer; the projection is orthographic, so the ray through pixel (X, Y) is
(X, Y, Z) for all Z and the visible hit is the largest Z. Arrays are batched:
``(B, H, W)`` maps, or broadcastable ``(B, 1, W)`` / ``(B, H, 1)`` coordinate grids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32
HEAD_YC = -2.0  # head ellipsoid centre below the eye line (head units = pixels)


def e3(x: np.ndarray) -> np.ndarray:
    """Per-image scalars (B,) -> (B, 1, 1) for broadcasting over maps."""
    return np.asarray(x, dtype=F32)[:, None, None]


def rot_y(a: np.ndarray) -> np.ndarray:
    """Rotations about y by ``a`` radians (B,) -> (B, 3, 3); + turns +z toward +x."""
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    return np.stack(
        [np.stack([c, o, s], -1), np.stack([o, i, o], -1), np.stack([-s, o, c], -1)], -2
    )


def rot_x(a: np.ndarray) -> np.ndarray:
    """Rotations about x by ``a`` radians (B,) -> (B, 3, 3); + turns +z toward -y (up)."""
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    return np.stack(
        [np.stack([i, o, o], -1), np.stack([o, c, -s], -1), np.stack([o, s, c], -1)], -2
    )


def rot_z(a: np.ndarray) -> np.ndarray:
    """Rotations in the image plane by ``a`` radians (B,) -> (B, 3, 3); + is clockwise."""
    c, s = np.cos(a), np.sin(a)
    o, i = np.zeros_like(a), np.ones_like(a)
    return np.stack(
        [np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2
    )


@dataclass
class Hit:
    """A batch of ray/ellipsoid hits.

    Attributes:
        z: camera depth of the hit (larger is nearer); meaningless where ``alpha`` is 0.
        alpha: coverage in [0, 1], soft over about one pixel at the silhouette.
        u: hit point in the ellipsoid's unit-sphere coordinates, three maps.
        lit: shading factor (ambient with view falloff + Lambert), one map.
    """

    z: np.ndarray
    alpha: np.ndarray
    u: tuple[np.ndarray, np.ndarray, np.ndarray]
    lit: np.ndarray


def cast_ellipsoid(
    X: np.ndarray,
    Y: np.ndarray,
    M: np.ndarray,
    centre: np.ndarray,
    axes: np.ndarray,
    light: np.ndarray,
    ambient: np.ndarray,
    diffuse: np.ndarray,
    edge_px: np.ndarray,
) -> Hit:
    """Cast orthographic rays at one ellipsoid per image and shade the hits.

    Args:
        X: camera x of the pixels, (B, 1, W) or (B, h, w).
        Y: camera y of the pixels, (B, H, 1) or (B, h, w).
        M: camera -> local frame rotation, (B, 3, 3).
        centre: ellipsoid centre in the local frame, (B, 3).
        axes: semi-axes in the local frame, (B, 3).
        light: unit light direction (toward the light) in camera coordinates, (B, 3).
        ambient: ambient light level, (B,).
        diffuse: directional light strength, (B,).
        edge_px: the ellipsoid's radius in pixels, sets the anti-aliasing width, (B,).

    Returns:
        The :class:`Hit` maps, each broadcast to (B, H, W).
    """
    inv = 1.0 / axes.astype(F32)
    a = M[:, :, 0] * inv  # (B, 3): d u_k / dX
    b = M[:, :, 1] * inv
    g = -centre * inv
    w = M[:, :, 2] * inv  # ray direction in unit-sphere space
    u = [e3(a[:, k]) * X + e3(g[:, k]) + e3(b[:, k]) * Y for k in range(3)]
    A = e3((w * w).sum(1))
    Bc = u[0] * e3(w[:, 0]) + u[1] * e3(w[:, 1]) + u[2] * e3(w[:, 2])
    C = u[0] * u[0] + u[1] * u[1] + u[2] * u[2]
    C -= 1.0
    disc = Bc * Bc - A * C
    root = np.sqrt(np.maximum(disc, 0.0))
    z = (root - Bc) / A
    alpha = np.clip(disc / A * e3(0.5 * edge_px) + 0.5, 0.0, 1.0)
    uh = tuple(u[k] + z * e3(w[:, k]) for k in range(3))
    # Normal in the local frame is uh / axes; compare it with light and view there.
    L = np.einsum("bij,bj->bi", M, light) * inv
    nn = uh[0] * uh[0] * e3(inv[:, 0] ** 2) + uh[1] * uh[1] * e3(inv[:, 1] ** 2)
    nn += uh[2] * uh[2] * e3(inv[:, 2] ** 2)
    rn = 1.0 / np.sqrt(nn + 1e-12)
    nl = (uh[0] * e3(L[:, 0]) + uh[1] * e3(L[:, 1]) + uh[2] * e3(L[:, 2])) * rn
    # The view direction in the local frame is M[:, :, 2]; times 1/axes that is w.
    nv = (uh[0] * e3(w[:, 0]) + uh[1] * e3(w[:, 1]) + uh[2] * e3(w[:, 2])) * rn
    lit = e3(ambient) * (0.7 + 0.3 * nv) + e3(diffuse) * np.maximum(nl, 0.0)
    return Hit(z=z, alpha=alpha, u=uh, lit=lit)


@dataclass
class Window:
    """A fixed-size pixel window per image, placed anywhere inside the frame.

    Attributes:
        flat: flat index into a C-contiguous (B, H, W) map of every window pixel, (B, h, w).
        yi: row index, (B, h, 1).
        xi: column index, (B, 1, w).
    """

    flat: np.ndarray
    yi: np.ndarray
    xi: np.ndarray

    def take(self, arr: np.ndarray) -> np.ndarray:
        """Gather a C-contiguous (B, H, W) map into the window, -> (B, h, w)."""
        return np.take(arr.reshape(-1), self.flat)

    def put(self, arr: np.ndarray, values: np.ndarray) -> None:
        """Scatter (B, h, w) values back into a C-contiguous (B, H, W) map."""
        arr.reshape(-1)[self.flat] = values


def make_window(
    cx: np.ndarray, cy: np.ndarray, h: int, w: int, size: int, images: np.ndarray | None = None
) -> Window:
    """A window of h x w pixels centred near (cx, cy) (pixels, (B,)), clamped to the frame.

    ``images`` picks which images of the batch the rows of ``cx``/``cy`` belong to
    (default: all, in order).
    """
    y0 = np.clip(np.round(cy - h / 2.0).astype(np.int64), 0, size - h)
    x0 = np.clip(np.round(cx - w / 2.0).astype(np.int64), 0, size - w)
    bi = np.arange(len(cx)) if images is None else np.asarray(images)
    yi = y0[:, None, None] + np.arange(h)[None, :, None]
    xi = x0[:, None, None] + np.arange(w)[None, None, :]
    flat = (bi[:, None, None] * size + yi) * size + xi
    return Window(flat=flat, yi=yi, xi=xi)


def soft(d: np.ndarray, k: float = 1.5) -> np.ndarray:
    """Coverage from a signed distance (positive inside), ramped over ~1/k pixel."""
    return np.clip(d * k + 0.5, 0.0, 1.0)
