"""Face parts drawn in per-image windows: eyes, brows, mouth, marks, ears, nose, glasses.

Each function takes the scene (poses, colours, the head's surface coordinates) and
the canvas, works on a small window around the part's projected position, and
writes the window back. Surface parts ("decals") use the head's coordinates
``sc.q`` so they foreshorten with the turn; ears and nose are their own ellipsoids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vec2face.toyfaces._geometry import (
    F32,
    HEAD_YC,
    Window,
    cast_ellipsoid,
    e3,
    make_window,
    rot_x,
    rot_y,
    soft,
)
from vec2face.toyfaces._palette import IRIS, ramp
from vec2face.toyfaces._textures import TILE, textures

if TYPE_CHECKING:
    from vec2face.toyfaces._scene import Canvas, Scene

S = 112


class _Decal:
    """Gathered head-surface data and colour of one window, written back by ``commit``."""

    def __init__(
        self, sc: Scene, canvas: Canvas, cx: np.ndarray, cy: np.ndarray, h: int, w: int
    ) -> None:
        self.win: Window = make_window(cx, cy, h, w, S)
        self.canvas = canvas
        self.sc = sc
        self.x, self.y, self.z = (self.win.take(a) for a in sc.q)
        self.vis = self.win.take(sc.head_vis) * np.clip(self.z * 0.2, 0.0, 1.0)
        self.lit = self.win.take(sc.head_lit)
        self.rgb = [self.win.take(c) for c in canvas.rgb]

    def paint(
        self,
        alpha: np.ndarray,
        colour: np.ndarray | list[np.ndarray],
        lit: np.ndarray | None = None,
    ) -> None:
        """Blend a lit colour ((B, 3) or three maps) over the window with ``alpha``."""
        a = alpha * self.vis
        lit = self.lit if lit is None else lit
        for k in range(3):
            col = colour[k] if isinstance(colour, list) else e3(colour[:, k])
            self.rgb[k] += a * (col * lit * e3(self.sc.light_rgb[:, k]) - self.rgb[k])

    def darken(self, amount: np.ndarray) -> None:
        f = 1.0 - amount * self.vis
        for c in self.rgb:
            c *= f

    def commit(self) -> None:
        for c, v in zip(self.canvas.rgb, self.rgb):
            self.win.put(c, v)


def _head_point_xy(sc: Scene, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.stack([x, y, sc.surface_z(x, y)], -1).astype(F32)
    return sc.project(q)


def draw_eyes(sc: Scene, canvas: Canvas) -> None:
    """Eyes (lids, sclera, iris, pupil, catchlight, lashes, crease), brows, age lines."""
    ip, nu = sc.ip, sc.nu
    ew = e3(ip.eye_width)
    close = e3(np.clip(nu.eye_close + 0.25 * nu.expression, 0.0, 1.0))
    eo = e3(ip.eye_open)
    tilt = e3(ip.eye_tilt)
    smile = e3(sc.smile)
    age = e3(sc.age01)
    ri = np.minimum(e3(ip.eye_width) * 0.48, 3.3)
    iris = ramp(ip.iris_hue, IRIS) * (1.0 - 0.45 * ip.iris_dark)[:, None]
    brow_col = (
        sc.hair * (0.5 + 0.3 * (1.0 - ip.brow_dark))[:, None] * (1.0 - 0.5 * sc.grey)[:, None]
    )
    brow_col += (sc.skin * 0.6 - brow_col) * (0.25 * ip.hair_hue * (1 - ip.brow_dark))[:, None]
    for side in (1.0, -1.0):
        cxh = side * ip.eye_spacing
        cx, cy = _head_point_xy(sc, cxh, sc.eye_y - 5.0)
        dc = _Decal(sc, canvas, cx, cy, 32, 32)
        ex = (dc.x - e3(cxh)) * side
        ey = dc.y - e3(sc.eye_y)
        t = ex / ew
        tt = np.clip(1.0 - t * t, 0.0, 1.0)
        st = np.sqrt(tt)
        centre_line = -tilt * t
        y_up_open = centre_line - eo * st**1.2 * (1.0 + 0.15 * t)
        y_up = centre_line + (y_up_open - centre_line) * (1.0 - close)
        y_lo = centre_line + eo * 0.7 * tt * (1.0 - close) * (1.0 - 0.3 * smile)
        # Socket shadow, bags and crow's feet on the skin first.
        sock = np.exp(-((ex / (1.7 * ew)) ** 2) - ((ey + 1.5) / (2.0 * eo + 2.5)) ** 2)
        bags = age * np.exp(-(((ey - y_lo - 2.8) / 1.1) ** 2)) * soft(1.1 - np.abs(t), 2.0)
        crow = (age * 0.8 + 0.2 * smile) * soft(ex - ew - 1.0, 1.0) * soft(ew + 6.0 - ex, 1.0)
        crow = crow * np.abs(np.sin(ey * 1.3 + ex * 0.4)) ** 6
        dc.darken(0.14 * sock + 0.12 * bags + 0.16 * crow)
        # Lid crease above the open lid line.
        crease = np.exp(-(((ey - (y_up_open - e3(ip.lid_crease) * (0.6 + 0.4 * st))) / 0.7) ** 2))
        dc.darken(0.22 * crease * soft(0.95 - np.abs(t), 3.0))
        inside = np.minimum(ey - y_up, y_lo - ey)
        a_open = soft(inside, 1.6) * soft(1.0 - np.abs(t), 6.0)
        sclera_tone = 1.0 - 0.35 * t * t
        lid_shadow = 0.6 + 0.4 * np.clip((ey - y_up) / 1.6, 0.0, 1.0)
        open_lit = dc.lit * lid_shadow * 1.05
        sclera = [e3(np.full(sc.n, v, F32)) * sclera_tone for v in (0.93, 0.89, 0.86)]
        sclera[1] = sclera[1] - 0.08 * soft(-t - 0.7, 3.0)  # pink inner corner
        dc.paint(a_open, sclera, open_lit)
        ix = e3(nu.gaze_x) * ew * 0.35
        iy = -tilt * ix / ew + e3(nu.gaze_y) * 1.0 - 0.15 * eo
        dx, dy = ex - ix, ey - iy
        dr = np.sqrt(dx * dx + dy * dy) + 1e-3
        rr = dr / ri
        streak = 0.85 + 0.15 * np.sin(np.arctan2(dy, dx) * 11.0 + e3(ip.iris_hue) * 9.0)
        ring = 1.2 - 0.55 * np.clip(rr, 0.0, 1.0) ** 3
        irgb = [e3(iris[:, k]) * ring * streak for k in range(3)]
        a_iris = a_open * soft(ri - dr, 2.0)
        dc.paint(a_iris, irgb, open_lit)
        a_pupil = a_open * soft(ri * 0.42 - dr, 2.0)
        dc.paint(a_pupil, np.full((sc.n, 3), 0.03, F32), open_lit)
        hl = soft(0.7 - np.sqrt((dx + 0.35 * ri * side) ** 2 + (dy + 0.4 * ri) ** 2), 2.0) * a_open
        for c in dc.rgb:
            c += 0.75 * hl * dc.vis * (1.0 - c)
        # Lashes and lid margin: thicker toward the outer corner.
        lash_w = 0.55 + 0.5 * np.clip(t, 0.0, 1.0)
        lash = soft(lash_w - np.abs(ey - y_up + 0.35), 2.0) * soft(1.08 - np.abs(t), 6.0)
        dc.paint(lash * 0.92, np.full((sc.n, 3), 0.07, F32))
        lower = np.exp(-(((ey - y_lo - 0.3) / 0.55) ** 2)) * soft(1.0 - np.abs(t), 4.0)
        dc.darken(0.3 * lower)
        # Brow: a tapered band with hair strokes; raised or frowning with expression.
        raise_ = e3(nu.brow_raise)
        bl = e3(ip.brow_length)
        tau = (ex + 0.62 * bl) / (1.55 * bl)
        arch = e3(ip.brow_arch) * (1.0 - ((tau - 0.62) / 0.62) ** 2)
        inner_drop = np.clip(-raise_, 0.0, 1.0) * 2.0 * (1.0 - tau)
        y_b = (
            -(e3(ip.brow_height) + eo * 0.4 + 2.2 * raise_)
            - arch
            - e3(ip.brow_slant) * (tau - 0.5)
            + inner_drop
        )
        y_b = y_b + 0.8 * age * tau  # brow tails sag with age
        th = e3(ip.brow_thickness) * (1.15 - 0.65 * np.clip(tau, 0.0, 1.0) ** 1.5)
        a_b = soft(th * 0.5 - np.abs(ey - y_b), 1.4) * soft(
            np.minimum(tau, 1.0 - tau) * 12.0, 1.0
        )
        strokes = 0.7 + 0.3 * np.sin(ex * 2.6 - (ey - y_b) * 1.6 * side + e3(ip.hair_seed) * 5.0)
        a_b = a_b * (0.55 + 0.45 * strokes) * 0.95
        dc.paint(a_b, brow_col)
        dc.commit()


def draw_mouth(sc: Scene, canvas: Canvas) -> None:
    """Lips (cupid's bow, lip line, highlight), open mouth with teeth, folds, blush, freckles."""
    ip, nu = sc.ip, sc.nu
    cx, cy = _head_point_xy(sc, np.zeros(sc.n, F32), sc.mouth_y - 6.0)
    dc = _Decal(sc, canvas, cx, cy, 38, 48)
    smile = e3(sc.smile)
    opn = e3(nu.mouth_open)
    age = e3(sc.age01)
    mx = dc.x
    my = dc.y - e3(sc.mouth_y)
    ax = np.abs(mx)
    mw = e3(ip.mouth_width) * (1.0 + 0.18 * smile + 0.05 * opn)
    # Nasolabial folds: from the nose wings to beyond the mouth corners.
    top = e3(sc.nose_y - sc.mouth_y)
    tau = (my - top) / (4.0 - top)
    xf = e3(ip.nose_width) + 2.0 + (mw + 2.5 - e3(ip.nose_width) - 2.0) * np.clip(tau, 0.0, 1.2)
    fold = np.exp(-(((ax - xf) / 1.0) ** 2)) * np.clip(
        np.minimum(tau * 4.0, (0.95 - tau) * 3.0), 0.0, 1.0
    )
    dc.darken((0.03 + 0.13 * age + 0.1 * smile) * fold)
    # Blush and freckles on the cheeks.
    cheek = np.exp(-(((ax - 18.0) / 6.0) ** 2) - ((my + 17.0) / 5.0) ** 2)
    red = e3(ip.blush) * 0.05 * cheek * dc.vis
    dc.rgb[1] -= red
    dc.rgb[2] -= red
    if np.any(ip.freckles > 0):
        fine = textures()["fine"]
        off = (ip.freckle_seed * 100).astype(np.int32)[:, None, None]
        fr = fine[(dc.y * 0.8).astype(np.int32) % TILE, (dc.x * 0.8 + off).astype(np.int32) % TILE]
        env = np.exp(-(((my + 17.0) / 7.0) ** 2)) * soft(26.0 - ax, 0.3)
        dc.darken(e3(ip.freckles) * 0.25 * soft(fr - 1.3, 1.5) * env)
    t = mx / mw
    tt = np.clip(1.0 - t * t, 0.0, 1.0)
    st = np.sqrt(tt)
    y_line = -smile * 4.0 * t * t + 1.2 * smile
    gap = opn * 6.0 * st
    gu, gl = 0.25 * gap, 0.75 * gap
    bow = 1.0 - 0.35 * e3(ip.cupid_bow) * np.exp(-((mx / 1.8) ** 2))
    thin = 1.0 - 0.3 * age
    lu = e3(ip.lip_upper) * thin * (1.0 - 0.2 * smile)
    ll = e3(ip.lip_lower) * thin
    y_ut = y_line - gu - lu * st**0.8 * bow
    y_lb = y_line + gl + ll * tt**0.6
    # Philtrum groove and shadow under the lower lip.
    philtrum = soft(1.2 - ax, 1.0) * soft(np.minimum(my - y_ut + 6.5, y_ut - my), 0.6)
    dc.darken(0.05 * philtrum)
    dc.darken(0.14 * np.exp(-(((my - y_lb - 2.0) / 1.2) ** 2)) * st)
    lip = sc.skin * np.array([0.92, 0.64, 0.64], F32)
    lip += (np.array([0.68, 0.3, 0.33], F32) - lip) * (0.45 * ip.lip_hue)[:, None]
    lip = np.clip(lip, 0.0, 1.0)
    inside_x = soft(1.0 - np.abs(t), 8.0)
    a_up = soft(np.minimum(my - y_ut, y_line - gu - my), 1.5) * inside_x
    a_lo = soft(np.minimum(my - y_line - gl, y_lb - my), 1.5) * inside_x
    hl = 1.0 + 0.28 * np.exp(-(((my - (y_line + gl + ll * 0.45)) / 0.9) ** 2)) * st
    dc.paint(a_up, [e3(lip[:, k]) * 0.9 for k in range(3)])
    dc.paint(a_lo, [e3(lip[:, k]) * hl for k in range(3)])
    # Mouth opening: dark interior and upper teeth; closed: a dark lip line.
    a_in = soft(np.minimum(my - (y_line - gu), y_line + gl - my), 1.5) * inside_x
    dc.paint(a_in, np.array([[0.22, 0.06, 0.07]], F32).repeat(sc.n, 0))
    teeth = (
        a_in
        * soft(y_line - gu + np.minimum(gap * 0.4, 2.4) - my, 1.5)
        * soft(0.75 - np.abs(t), 4.0)
    )
    dc.paint(teeth, np.array([[0.9, 0.87, 0.8]], F32).repeat(sc.n, 0))
    line = (
        np.exp(-(((my - y_line) / 0.6) ** 2))
        * soft(1.06 - np.abs(t), 6.0)
        * (1.0 - np.clip(opn * 3.0, 0.0, 1.0))
    )
    corners = np.exp(-((ax - mw) ** 2 + (my - y_line) ** 2) / 1.5)
    dc.darken(0.55 * line + 0.3 * corners)
    dc.commit()


def draw_moles(sc: Scene, canvas: Canvas) -> None:
    """Up to three moles at identity-specific places on the face."""
    ip = sc.ip
    for j in (1, 2, 3):
        size = getattr(ip, f"mole{j}_size")
        if not np.any(size > 0):
            continue
        mxh, myh = getattr(ip, f"mole{j}_x"), getattr(ip, f"mole{j}_y") + sc.eye_y
        cx, cy = _head_point_xy(sc, mxh, myh)
        dc = _Decal(sc, canvas, cx, cy, 8, 8)
        d = np.sqrt((dc.x - e3(mxh)) ** 2 + (dc.y - e3(myh)) ** 2)
        a = soft(e3(size) - d, 1.5) * e3((size > 0).astype(F32)) * 0.85
        dc.paint(a, sc.skin * np.array([0.42, 0.3, 0.24], F32))
        dc.commit()


def _window_canvas(canvas: Canvas, win: Window) -> tuple[np.ndarray, list[np.ndarray]]:
    return win.take(canvas.z), [win.take(c) for c in canvas.rgb]


def _composite(
    z_buf: np.ndarray,
    rgb: list[np.ndarray],
    z: np.ndarray,
    alpha: np.ndarray,
    col: list[np.ndarray],
) -> None:
    m = alpha * (z > z_buf)
    np.maximum(z_buf, z - (alpha < 0.5) * np.float32(1e5), out=z_buf)
    for c, v in zip(rgb, col):
        c += m * (v - c)


def _commit(canvas: Canvas, win: Window, z_buf: np.ndarray, rgb: list[np.ndarray]) -> None:
    win.put(canvas.z, z_buf)
    for c, v in zip(canvas.rgb, rgb):
        win.put(c, v)


def draw_ears(sc: Scene, canvas: Canvas) -> None:
    """Ears: flat ellipsoids on the sides of the head, angled outward, with a concha."""
    ip = sc.ip
    size = ip.ear_size
    ey = ip.ear_y + sc.eye_y
    a, b, c = sc.head_axes.T
    xs = a * np.sqrt(np.clip(1.0 - ((ey - HEAD_YC) / b) ** 2 - (4.0 / c) ** 2, 0.05, 1.0))
    ear_col = (sc.skin * np.array([1.0, 0.93, 0.92], F32)).astype(F32)
    for side in (1.0, -1.0):
        centre_h = np.stack([side * (xs + 0.5), ey, np.full(sc.n, -4.0)], -1).astype(F32)
        cx, cy = sc.project(centre_h)
        win = make_window(cx, cy, 36, 28, S)
        X = (win.xi + 0.5 - e3(sc.ox)) / e3(sc.s)
        Y = (win.yi + 0.5 - e3(sc.oy)) / e3(sc.s)
        L = rot_y((-side * np.radians(ip.ear_angle)).astype(F32))  # ear frame -> head
        Mloc = np.ascontiguousarray(L.transpose(0, 2, 1) @ sc.M)
        centre = np.einsum("bji,bj->bi", L, centre_h)
        axes = np.stack([np.full(sc.n, 2.6), size, size * 0.62], -1).astype(F32)
        hit = cast_ellipsoid(X, Y, Mloc, centre, axes, sc.light, sc.amb, sc.dif, sc.s * 3.0)
        r = np.sqrt(hit.u[1] ** 2 + (hit.u[2] * 1.1) ** 2)
        outer = soft(hit.u[0] * side, 3.0)
        concha = (
            outer * soft(0.55 - r, 8.0) * 0.45 + outer * np.exp(-(((r - 0.72) / 0.07) ** 2)) * 0.25
        )
        shade = hit.lit * (1.0 - concha)
        z_buf, rgb = _window_canvas(canvas, win)
        _composite(z_buf, rgb, hit.z, hit.alpha, sc.lit_rgb(ear_col, shade))
        _commit(canvas, win, z_buf, rgb)


def draw_nose(sc: Scene, canvas: Canvas) -> None:
    """Nose: a tilted bridge ellipsoid and a rounder tip with the wings and nostrils."""
    ip = sc.ip
    nw, npr = ip.nose_width, ip.nose_protrusion
    y_top = sc.eye_y + 1.0
    y_tip = sc.nose_y
    zs = sc.surface_z(np.zeros(sc.n, F32), (y_top + y_tip) / 2.0)
    cx, cy = sc.project(np.stack([np.zeros(sc.n), (y_top + y_tip) / 2.0, zs + 2.0], -1).astype(F32))
    win = make_window(cx, cy, 28, 30, S)
    X = (win.xi + 0.5 - e3(sc.ox)) / e3(sc.s)
    Y = (win.yi + 0.5 - e3(sc.oy)) / e3(sc.s)
    z_buf, rgb = _window_canvas(canvas, win)
    nose_col = (sc.skin * np.array([1.0, 0.98, 0.97], F32)).astype(F32)
    tilt = np.radians(22.0 + 6.0 * ip.nose_bridge).astype(F32)
    Lx = rot_x(-tilt)  # nose frame -> head: its long axis leans out at the bottom
    Mloc = np.ascontiguousarray(Lx.transpose(0, 2, 1) @ sc.M)
    c_head = np.stack([np.zeros(sc.n), (y_top + y_tip) / 2.0 + 0.5, zs - 0.32 * npr], -1).astype(
        F32
    )
    centre = np.einsum("bji,bj->bi", Lx, c_head)
    axes = np.stack(
        [nw * (0.6 + 0.25 * ip.nose_bridge), 0.5 * (y_tip - y_top) + 1.5, npr * 0.5], -1
    ).astype(F32)
    hit = cast_ellipsoid(X, Y, Mloc, centre, axes, sc.light, sc.amb, sc.dif, sc.s * axes[:, 0])
    # Fade the bridge in with its height above the face, so it grows out of the skin.
    _composite(
        z_buf,
        rgb,
        hit.z,
        hit.alpha * np.clip((hit.z - z_buf) * 0.45, 0.0, 1.0),
        sc.lit_rgb(nose_col, hit.lit),
    )
    # Tip and wings.
    zt = sc.surface_z(np.zeros(sc.n, F32), y_tip)
    t_head = np.stack([np.zeros(sc.n), y_tip - 1.5, zt + 0.55 * npr - 1.5], -1).astype(F32)
    axes_t = np.stack([nw, np.full(sc.n, 3.4), np.full(sc.n, 3.2) + 0.2 * npr], -1).astype(F32)
    M_t = sc.M
    hit_t = cast_ellipsoid(X, Y, M_t, t_head, axes_t, sc.light, sc.amb, sc.dif, sc.s * axes_t[:, 0])
    u0, u1, u2 = hit_t.u
    nostril = np.maximum(
        soft(
            0.3
            - np.sqrt(
                ((np.abs(u0) - 0.45) / 1.0) ** 2
                + ((u1 - 0.8) / 0.6) ** 2
                + ((u2 - 0.15) / 1.4) ** 2
            ),
            8.0,
        ),
        0.0,
    )
    wing = np.exp(-(((np.abs(u0) - 0.75) / 0.12) ** 2)) * soft(u1 + 0.1, 4.0)
    shade = hit_t.lit * (1.0 - 0.85 * nostril) * (1.0 - 0.2 * wing)
    _composite(
        z_buf,
        rgb,
        hit_t.z,
        hit_t.alpha * np.clip((hit_t.z - z_buf) * 0.6, 0.0, 1.0),
        sc.lit_rgb(nose_col, shade),
    )
    _commit(canvas, win, z_buf, rgb)


def draw_glasses(sc: Scene, canvas: Canvas) -> None:
    """Glasses on the images that have them: frames, bridge, tinted lenses."""
    nu, ip = sc.nu, sc.ip
    idx = np.nonzero(nu.glasses > 0.5)[0]
    if len(idx) == 0:
        return
    style = ip.glasses_style[idx]
    p = (2.0 + 3.0 * style)[:, None, None]
    hw = (10.5 + 2.5 * style)[:, None, None]
    hh = (8.5 - 1.5 * style)[:, None, None]
    thick = (0.8 + 1.4 * (style > 0.35))[:, None, None]
    frame = np.where(
        (style < 0.35)[:, None],
        [0.62, 0.6, 0.58],
        np.where((style < 0.7)[:, None], [0.28, 0.16, 0.09], [0.06, 0.06, 0.07]),
    )
    frame = frame.astype(F32)
    dark = nu.sunglasses[idx][:, None, None]
    M = sc.M[idx]
    es = ip.eye_spacing[idx]
    ey = sc.eye_y[idx] + 0.5
    zg = sc.surface_z(ip.eye_spacing, sc.eye_y + 0.5)[idx] + 6.0
    for side in (1.0, -1.0):
        cxh = side * es * 1.03
        q = np.stack([cxh, ey - 5.0, zg], -1).astype(F32)
        p2 = np.einsum("bij,bj->bi", sc.R[idx], q)
        cx = sc.ox[idx] + sc.s[idx] * p2[:, 0]
        cy = sc.oy[idx] + sc.s[idx] * p2[:, 1]
        win = make_window(cx, cy, 34, 36, S, images=idx)
        X = (win.xi + 0.5 - e3(sc.ox[idx])) / e3(sc.s[idx])
        Y = (win.yi + 0.5 - e3(sc.oy[idx])) / e3(sc.s[idx])
        lin = [e3(M[:, k, 0]) * X + e3(M[:, k, 1]) * Y for k in range(3)]
        Z = (e3(zg) - lin[2]) / e3(M[:, 2, 2])
        gx = (lin[0] + Z * e3(M[:, 0, 2]) - e3(cxh)) * side
        gy = lin[1] + Z * e3(M[:, 1, 2]) - e3(ey)
        r = ((np.abs(gx) / hw) ** p + (np.abs(gy) / hh) ** p) ** (1.0 / p)
        ring = soft(thick * 0.5 - np.abs(r - 1.0) * np.minimum(hw, hh), 1.5)
        lens = soft((1.0 - r) * hh, 1.5)
        if side > 0:
            bridge_x = lin[0] + Z * e3(M[:, 0, 2])
            gap = e3(cxh) - hw * 1.0
            bridge = soft(gap + 0.8 - np.abs(bridge_x), 1.5) * soft(
                thick * 0.5 + 0.2 - np.abs(gy + hh * 0.35), 1.5
            )
            ring = np.maximum(ring, bridge)
        z_buf, rgb = _window_canvas(canvas, win)
        vis = (Z > z_buf).astype(F32)
        tint = 1.0 - (0.08 + 0.82 * dark) * lens * vis
        sheen = 0.07 * lens * vis * np.clip(1.0 - (gy / hh + 1.0) * 0.5, 0.0, 1.0)
        for c in rgb:
            c *= tint
            c += sheen
        frame_lit = 0.45 + 0.55 * e3(sc.dif[idx] + sc.amb[idx]) * (
            0.7 + 0.3 * np.clip(-gy / hh, 0, 1)
        )
        _composite(z_buf, rgb, Z, ring, [e3(frame[:, k]) * frame_lit for k in range(3)])
        _commit(canvas, win, z_buf, rgb)


def draw_occluders(sc: Scene, canvas: Canvas) -> None:
    """A bar or a hand in front of the face on the (rare) images that have one."""
    nu = sc.nu
    idx = np.nonzero(nu.occluder > 0.5)[0]
    if len(idx) == 0:
        return
    pix = np.arange(S, dtype=F32) + 0.5
    x = pix[None, None, :] - e3(S / 2.0 + nu.occluder_x[idx])
    y = pix[None, :, None] - e3(S / 2.0 + nu.occluder_y[idx])
    ang = np.radians(nu.occluder_angle[idx])
    ca, sa = e3(np.cos(ang)), e3(np.sin(ang))
    u = x * ca + y * sa  # along the bar / up the fingers (negative u)
    v = -x * sa + y * ca
    hand = e3((nu.occluder_kind[idx] >= 0.5).astype(F32))
    ht = 8.0
    bar_a = soft(ht - np.abs(v), 1.5)
    bar_lit = 0.55 + 0.45 * np.sqrt(np.clip(1.0 - (v / ht) ** 2, 0.0, 1.0))
    # Hand: a palm ellipse and four finger capsules pointing along -v.
    palm = soft((1.0 - np.sqrt((u / 15.0) ** 2 + ((v - 10.0) / 12.0) ** 2)) * 12.0, 1.0)
    fingers = np.zeros_like(palm)
    for off, length in ((-9.0, 16.0), (-3.0, 20.0), (3.0, 19.0), (9.0, 15.0)):
        vv = np.clip(v, 2.0 - length, 2.0)
        d = np.sqrt((u - off) ** 2 + (v - vv) ** 2)
        fingers = np.maximum(
            fingers, soft(2.7 - d, 1.2) * (0.75 + 0.25 * np.clip(2.7 - d, 0.0, 1.0))
        )
    hand_a = np.maximum(palm, fingers)
    hand_lit = 0.55 + 0.45 * np.maximum(palm, np.clip(fingers, 0.0, 1.0))
    alpha = bar_a + (hand_a - bar_a) * hand
    lit = (bar_lit + (hand_lit - bar_lit) * hand) * e3(0.6 + 0.5 * sc.dif[idx])
    bar_col = np.stack([nu.cloth_g[idx], nu.cloth_b[idx], nu.cloth_r[idx]], -1) * 0.8
    skin = sc.skin[idx] * 0.97
    for k, c in enumerate(canvas.rgb):
        col = (e3(bar_col[:, k]) + e3(skin[:, k] - bar_col[:, k]) * hand) * lit
        sub = c[idx]
        sub += alpha * (col - sub)
        c[idx] = sub
