"""The scene of a batch of procedural faces: the per-image quantities every layer reads
(poses, colours, the head's surface and lighting), the canvas layers are composited into,
and the full-frame layers (background, body, head, hair shell).

The small parts drawn in windows on the head surface (eyes, mouth, ears, glasses, ...)
live in :mod:`vec2face.toyfaces._features`; :mod:`vec2face.toyfaces.render` runs both.
All maps are float32 ``(B, H, W)``; colours are kept as three such maps until the end.
"""

from __future__ import annotations

import numpy as np

from vec2face.toyfaces._geometry import (
    F32,
    HEAD_YC,
    cast_ellipsoid,
    e3,
    rot_x,
    rot_y,
    rot_z,
    soft,
)
from vec2face.toyfaces._palette import GREY_HAIR, HAIR, SKIN, ramp
from vec2face.toyfaces._textures import TILE, textures

IMAGE_SIZE = 112
_ALIGN_POINT = np.array([0.0, 18.0, 15.0], dtype=F32)  # face point kept fixed by alignment
_ALIGN_TARGET = (56.0, 63.0)
_FAR = np.float32(-1e4)
_W_LO, _W_STEP, _W_N = -80.0, 0.5, 321  # width-warp table over head heights
_H_STEP, _H_N = 2 * np.pi / 256, 257  # hairline table over azimuths -pi..pi
_STRAND_RES = 8  # strand-profile samples per strand


class Cols:
    """Column access by field name: ``Cols(arr, fields).yaw`` -> float32 (B,)."""

    def __init__(self, arr: np.ndarray, fields: tuple[str, ...]) -> None:
        self._arr = arr
        self._index = {f: i for i, f in enumerate(fields)}

    def __getattr__(self, name: str) -> np.ndarray:
        return self._arr[:, self._index[name]]


class Canvas:
    """Depth buffer and colour maps that layers are composited into, nearest wins.

    Attributes:
        z: (B, H, W) depth of the nearest surface so far.
        rgb: three (B, H, W) colour maps.
    """

    def __init__(self, z: np.ndarray, rgb: list[np.ndarray]) -> None:
        self.z = z
        self.rgb = rgb

    def under_all(self, alpha: np.ndarray, rgb: list[np.ndarray]) -> None:
        """Blend a layer that everything drawn later hides (depth stays far)."""
        for c, v in zip(self.rgb, rgb):
            c += alpha * (v - c)

    def first(self, z: np.ndarray, alpha: np.ndarray, rgb: list[np.ndarray]) -> np.ndarray:
        """Composite the first depth-writing layer: nothing is nearer yet."""
        np.maximum(self.z, z - (alpha < 0.5) * np.float32(1e5), out=self.z)
        for c, v in zip(self.rgb, rgb):
            c += alpha * (v - c)
        return alpha

    def over(self, z: np.ndarray, alpha: np.ndarray, rgb: list[np.ndarray]) -> np.ndarray:
        """Composite a layer where it is nearer; returns its effective coverage (B, H, W)."""
        m = alpha * (z > self.z)
        zc = z - (alpha < 0.5) * np.float32(1e5)
        np.maximum(self.z, zc, out=self.z)
        for c, v in zip(self.rgb, rgb):
            c += m * (v - c)
        return m


class Scene:
    """Per-batch derived quantities shared by the layers (poses, colours, grids)."""

    def __init__(self, ip: Cols, nu: Cols) -> None:
        self.ip, self.nu = ip, nu
        n = len(nu.yaw)
        self.n = n
        S = IMAGE_SIZE
        # Ageing cues (lines, sag, skin tone) ramp over the whole sampled range 18-80, so
        # every year of age changes the face a little and no range is indistinguishable.
        self.age01 = np.clip((nu.age - 18.0) / 62.0, 0.0, 1.0).astype(F32)
        rad = np.float32(np.pi / 180.0)
        self.R = (rot_z(nu.roll * rad) @ rot_x(nu.pitch * rad) @ rot_y(nu.yaw * rad)).astype(F32)
        self.M = np.ascontiguousarray(self.R.transpose(0, 2, 1))
        self.s = nu.scale.astype(F32)
        rf = self.R @ _ALIGN_POINT
        self.ox = (_ALIGN_TARGET[0] + nu.shift_x - self.s * rf[:, 0]).astype(F32)
        self.oy = (_ALIGN_TARGET[1] + nu.shift_y - self.s * rf[:, 1]).astype(F32)
        pix = np.arange(S, dtype=F32) + 0.5
        self.pix = pix
        self.X = (pix[None, None, :] - e3(self.ox)) / e3(self.s)  # (B, 1, W)
        self.Y = (pix[None, :, None] - e3(self.oy)) / e3(self.s)  # (B, H, 1)
        az, el = nu.light_azimuth * rad, nu.light_elevation * rad
        self.light = np.stack(
            [np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)], -1
        ).astype(F32)
        self.amb = nu.light_ambient.astype(F32)
        self.dif = nu.light_strength.astype(F32)
        warm = nu.light_warmth
        self.light_rgb = np.stack(
            [1.0 + 0.07 * warm, np.ones_like(warm), 1.0 - 0.09 * warm], -1
        ).astype(F32)
        skin = ramp(ip.skin_tone, SKIN)
        skin[:, 0] += 0.035 * ip.skin_red
        skin[:, 2] -= 0.02 * ip.skin_red
        # Older skin is a little duller and yellower.
        skin *= (1.0 - 0.06 * self.age01)[:, None]
        skin[:, 2] *= 1.0 - 0.05 * self.age01
        self.skin = skin.astype(F32)
        hair = ramp(ip.hair_hue, HAIR) * (0.85 + 0.3 * ip.hair_light)[:, None]
        grey = np.clip((nu.age - ip.grey_onset) / 35.0, 0.0, 0.85)[:, None]
        self.grey = grey[:, 0].astype(F32)
        self.hair = (hair + (GREY_HAIR - hair) * grey).astype(F32)
        self.head_axes = np.stack([ip.head_width, ip.head_height, ip.head_depth], -1).astype(F32)
        self.smile = nu.expression.astype(F32)
        self.eye_y = ip.eye_height.astype(F32)
        self.mouth_y = (ip.eye_height + ip.mouth_drop + 0.6 * self.age01).astype(F32)
        self.nose_y = (ip.eye_height + 2.0 + ip.nose_length + 0.8 * self.age01).astype(F32)
        self.cheek = (ip.cheek_width + 0.03 * self.smile).astype(F32)
        self.jaw = (ip.jaw_width + 0.07 * self.age01).astype(F32)
        self.chin = ip.chin_width.astype(F32)
        # Head width relative to the ellipsoid along its height (cheekbones, jaw, chin).
        yy = (_W_LO + _W_STEP * np.arange(_W_N, dtype=F32))[None, :]
        bump = lambda m, s: np.exp(-(((yy - m) / s) ** 2))
        width = 1.0 + self.cheek[:, None] * bump(4.0, 9.0) + self.jaw[:, None] * bump(33.0, 9.0)
        width += self.chin[:, None] * bump(46.0, 6.0)
        self.inv_width_lut = (1.0 / width).astype(F32)
        # Profile relief of the face's centre line (brow ridge, lips, chin), in units
        # of the depth semi-axis, and its slope for the normals.
        ey, my, opn = self.eye_y[:, None], self.mouth_y[:, None], nu.mouth_open[:, None]
        relief = (0.8 + 1.6 * ip.brow_ridge[:, None]) * bump(ey - 8.0, 3.5)
        relief += (0.9 + 0.3 * ip.lip_upper[:, None]) * bump(my - 1.8, 1.8)
        relief += (0.7 + 0.3 * ip.lip_lower[:, None]) * bump(my + 2.2 + 4.0 * opn, 1.8)
        relief -= 0.8 * bump(my + 6.0 + 5.0 * opn, 1.8)
        relief += (1.0 + 3.0 * ip.chin_protrusion[:, None]) * bump(my + 12.5 + 5.0 * opn, 4.0)
        relief_z = relief / ip.head_depth[:, None]
        self.relief_lut = relief_z.astype(F32)
        slope = np.gradient(relief_z, _W_STEP, axis=1) * ip.head_height[:, None]
        self.relief_slope_lut = slope.astype(F32)
        # Hairline height over the azimuth around the head (0 = straight ahead): the
        # forehead line, sides that reach down with hair length, the nape at the back.
        length = ip.hair_length[:, None]
        recess = (ip.balding * np.clip((nu.age - 24.0) / 45.0, 0.0, 1.0))[:, None]
        th = (-np.pi + _H_STEP * np.arange(_H_N))[None, :]
        c = np.cos(th)
        yf = -(ip.hairline[:, None] + 14.0 * recess)
        ys = -5.0 + 48.0 * length**2
        yb = 34.0 + 45.0 * length
        hl = ys + 0.5 * (yf - yb) * c + (0.5 * (yf + yb) - ys) * c * c
        temple = 10.0 * recess + 2.0 * ip.masculinity[:, None]
        hl -= temple * np.exp(-(((c - 0.72) * 8.0) ** 2))
        # A fringe for some long-haired people: the front hairline drops toward the brows.
        fringe = np.clip(ip.hair_volume - 0.55, 0.0, 1.0)[:, None] * length * 40.0
        hl += fringe * np.exp(-((th / 0.5) ** 2))
        # Short and medium hair clears the ears: the line rises over them.
        ear_top = (ip.ear_y + ip.eye_height - ip.ear_size - 1.5)[:, None]
        around_ear = np.exp(-(((np.abs(th) - 1.72) / 0.3) ** 4)) * np.clip(
            1.6 - 2.2 * length, 0.0, 1.0
        )
        hl -= np.maximum(hl - ear_top, 0.0) * around_ear
        self.hairline_lut = hl.astype(F32)

    def project(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head points (B, 3) -> image pixel coordinates (x, y), each (B,)."""
        p = np.einsum("bij,bj->bi", self.R, q)
        return self.ox + self.s * p[:, 0], self.oy + self.s * p[:, 1]

    def surface_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Front z of the (unwarped) head ellipsoid at head (x, y), per image (B,)."""
        a, b, c = self.head_axes.T
        t = 1.0 - (x / a) ** 2 - ((y - HEAD_YC) / b) ** 2
        return c * np.sqrt(np.clip(t, 0.05, 1.0))

    def lit_rgb(
        self, albedo: list[np.ndarray] | np.ndarray, lit: np.ndarray, spec: np.ndarray | float = 0.0
    ) -> list[np.ndarray]:
        """Albedo (three maps or (B, 3)) x shading x light colour (+ white specular)."""
        out = []
        for k in range(3):
            a = albedo[k] if isinstance(albedo, list) else e3(albedo[:, k])
            out.append(a * lit * e3(self.light_rgb[:, k]) + spec)
        return out

    # ---- layers -------------------------------------------------------------------
    def background(self, canvas: Canvas) -> None:
        """Fill the canvas with a two-colour gradient and a blotchy texture, at far depth."""
        nu, S = self.nu, IMAGE_SIZE
        ang = nu.bg_angle * np.float32(np.pi / 180.0)
        px = self.pix - S / 2.0
        t = e3(np.cos(ang) / S) * px[None, None, :] + e3(np.sin(ang) / S) * px[None, :, None] + 0.5
        blotch = textures()["blotch"]
        off = (nu.bg_seed * (TILE - S) * 37.0).astype(np.int64) % (TILE - S)
        tex = np.stack(
            [blotch[o : o + S, (o * 7) % (TILE - S) : (o * 7) % (TILE - S) + S] for o in off]
        )
        f = 1.0 + e3(0.3 * nu.bg_texture) * tex
        for k, c in enumerate("rgb"):
            c1, c2 = getattr(nu, f"bg_{c}"), getattr(nu, f"bg_{c}2")
            np.multiply(e3(c1) + e3(c2 - c1) * t, f, out=canvas.rgb[k])
        canvas.z.fill(_FAR)

    def body(self, canvas: Canvas) -> None:
        """Neck (a vertical cylinder under the head) and shoulders (a wide dome)."""
        nb = np.array([0.0, 38.0, -9.0], dtype=F32)
        nx, _ = self.project(np.broadcast_to(nb, (self.n, 3)))
        X = (self.pix[None, None, :] - e3(nx)) / e3(self.s)
        Y = (self.pix[None, :, None] - e3(self.oy)) / e3(self.s)
        r = e3(0.6 * self.ip.head_width)
        t = 1.0 - (X / r) ** 2
        nz = np.sqrt(np.maximum(t, 0.0))
        alpha = np.clip(t * r * 0.5 + 0.5, 0.0, 1.0) * np.clip((Y - 14.0) * 0.5, 0.0, 1.0)
        L = self.light
        nl = np.maximum(e3(L[:, 0]) * X / r + e3(L[:, 2]) * nz, 0.0)
        lit = e3(self.amb) * (0.55 + 0.45 * nz) + e3(self.dif) * nl
        lit = lit * (0.55 + 0.45 * np.clip((Y - 46.0) * 0.06, 0.0, 1.0))  # jaw shadow
        canvas.under_all(alpha, self.lit_rgb(self.skin * 0.95, lit))
        # Shoulders: only the lowest rows can show them.
        top = 76
        sub = Canvas(canvas.z[:, top:], [c[:, top:] for c in canvas.rgb])
        Ys = Y[:, top:]
        M = np.broadcast_to(np.eye(3, dtype=F32), (self.n, 3, 3))
        centre = np.broadcast_to(np.array([0.0, 118.0, -30.0], dtype=F32), (self.n, 3))
        axes = np.broadcast_to(np.array([100.0, 62.0, 40.0], dtype=F32), (self.n, 3))
        hit = cast_ellipsoid(
            X, Ys, M, centre, axes, self.light, self.amb, self.dif, np.full(self.n, 60.0, F32)
        )
        # A round neckline opening shows the neck inside the collar.
        neckline = np.clip((np.abs(X) - 0.62 * r) * 0.5 + 0.5, 0.0, 1.0) + np.clip(
            (Ys - 66.0) * 0.5, 0.0, 1.0
        )
        alpha = hit.alpha * np.minimum(neckline, 1.0)
        cloth = np.stack([self.nu.cloth_r, self.nu.cloth_g, self.nu.cloth_b], -1).astype(F32)
        sub.under_all(alpha, self.lit_rgb(cloth, hit.lit))

    def head(self, canvas: Canvas) -> None:
        """Cast the warped head ellipsoid, paint skin, scalp hair and beard, composite."""
        z, alpha, self.q, normal = self._cast_head()
        self.head_lit, highlight = self._shade_head(*normal)
        self.head_vis = canvas.first(z, alpha, self._head_rgb(self.head_lit, highlight))
        self.head_z = z

    def _cast_head(self) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
        """Ray-cast the head: the ellipsoid of ``head_axes``, its width warped along its
        height (``inv_width_lut``) and its centre line pushed out by the profile relief.

        Returns:
            (depth z, coverage alpha, the hit in head coordinates (qx, qy, qz), the normal's
            terms (t0, uh1, uh2) for ``_shade_head``); every map (B, H, W).
        """
        M = self.M
        axes = self.head_axes
        inv = 1.0 / axes
        X, Y = self.X, self.Y
        # Unit-sphere coordinates along the ray: u_k(Z) = al_k X + be_k Y + ga_k + Z w_k.
        al, be, w = M[:, :, 0] * inv, M[:, :, 1] * inv, M[:, :, 2] * inv
        ga1 = -HEAD_YC * inv[:, 1]
        # Terms of the y and z axes are linear/quadratic in X and Y: build them from
        # (B, 1, W) and (B, H, 1) pieces so each costs one full-size operation.
        bc_rest = (e3(al[:, 1] * w[:, 1] + al[:, 2] * w[:, 2]) * X + e3(ga1 * w[:, 1])) + e3(
            be[:, 1] * w[:, 1] + be[:, 2] * w[:, 2]
        ) * Y
        kxx = al[:, 1] ** 2 + al[:, 2] ** 2
        kyy = be[:, 1] ** 2 + be[:, 2] ** 2
        kxy = 2.0 * (al[:, 1] * be[:, 1] + al[:, 2] * be[:, 2])
        fx = e3(kxx) * X * X + e3(2.0 * ga1 * al[:, 1]) * X + e3(ga1**2 - 1.0)
        fy = e3(kyy) * Y * Y + e3(2.0 * ga1 * be[:, 1]) * Y
        c_rest = (e3(kxy) * X) * Y
        c_rest += fx
        c_rest += fy
        a_rest = e3(w[:, 1] ** 2 + w[:, 2] ** 2)
        u0 = e3(al[:, 0]) * X + e3(be[:, 0]) * Y
        w0 = e3(w[:, 0])
        # Pass 1 without the width warp, to find the height where the ray meets the head.
        bc = u0 * w0 + bc_rest
        cc = u0 * u0
        u0sq = cc
        cc = cc + c_rest
        A = a_rest + w0 * w0
        disc = bc * bc - A * cc
        z = (np.sqrt(np.maximum(disc, 0.0)) - bc) / A
        lin1 = e3(M[:, 1, 0]) * X + e3(M[:, 1, 1]) * Y
        y1 = lin1 + z * e3(M[:, 1, 2])
        flat = self.lut_index(y1, _W_LO, _W_STEP, _W_N)
        iw = np.take(self.inv_width_lut.ravel(), flat)
        # Relief along the face's centre line, fading out toward the cheeks.
        xr = u0 + z * w0
        g = xr * xr
        g *= e3((axes[:, 0] / 16.0) ** 2)
        np.subtract(1.0, g, out=g)
        np.maximum(g, 0.0, out=g)
        off = np.take(self.relief_lut.ravel(), flat)
        off *= g
        # Pass 2: the x semi-axis scaled by w(y1), the surface pushed out by the relief.
        w0p = w0 * iw
        A = a_rest + w0p * w0p
        bc = u0 * iw * w0p + bc_rest
        bc -= off * e3(w[:, 2])
        u2_0 = e3(al[:, 2]) * X + e3(be[:, 2]) * Y
        iw2 = iw * iw
        cc = u0sq * iw2 + c_rest
        cc += off * (off - 2.0 * u2_0)
        disc = bc * bc - A * cc
        z = (np.sqrt(np.maximum(disc, 0.0)) - bc) / A
        alpha = np.clip(disc / A * e3(0.5 * self.s * axes[:, 0]) + 0.5, 0.0, 1.0)
        uh0 = (u0 + z * w0) * iw  # unit coordinate across the warped width
        uh1 = e3(al[:, 1]) * X + e3(be[:, 1]) * Y + e3(ga1) + z * e3(w[:, 1])
        uh2 = u2_0 + z * e3(w[:, 2])
        uh2 -= off
        qx = uh0 * e3(axes[:, 0]) / iw
        qy = uh1 * e3(axes[:, 1]) + HEAD_YC
        qz = uh2 * e3(axes[:, 2])
        slope = np.take(self.relief_slope_lut.ravel(), flat)
        slope *= g
        uh1 = uh1 - slope * uh2
        # Normal (ignoring the slope of the warp) is (uh0 iw / a, uh1 / b, uh2 / c).
        return z, alpha, (qx, qy, qz), (uh0 * iw, uh1, uh2)

    def _shade_head(
        self, t0: np.ndarray, uh1: np.ndarray, uh2: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shading (ambient + diffuse) and Blinn highlight factor (n.h)^8 of the head, whose
        normal is (t0 / a, uh1 / b, uh2 / c) for semi-axes (a, b, c) (maps (B, H, W))."""
        M = self.M
        inv = 1.0 / self.head_axes
        Lh = np.einsum("bij,bj->bi", M, self.light) * inv
        Vh = M[:, :, 2] * inv
        nl = t0 * e3(Lh[:, 0]) + uh1 * e3(Lh[:, 1]) + uh2 * e3(Lh[:, 2])
        nv = t0 * e3(Vh[:, 0]) + uh1 * e3(Vh[:, 1]) + uh2 * e3(Vh[:, 2])
        nn = (t0 * e3(inv[:, 0])) ** 2 + (uh1 * e3(inv[:, 1])) ** 2 + (uh2 * e3(inv[:, 2])) ** 2
        rn = 1.0 / np.sqrt(nn + 1e-12)
        nl *= rn
        nv *= rn
        lit = e3(0.3 * self.amb) * (nv + 7.0 / 3.0) + e3(self.dif) * np.maximum(nl, 0.0)
        # Blinn highlight: n.h = (n.l + n.v) / |l + v| for unit l and v.
        lv = np.linalg.norm(self.light + np.array([0.0, 0.0, 1.0], F32), axis=1)
        nh = np.maximum((nl + nv) * e3(1.0 / lv), 0.0)
        nh *= nh
        nh *= nh
        nh *= nh
        return lit, nh

    def _head_rgb(self, lit: np.ndarray, nh: np.ndarray) -> list[np.ndarray]:
        """Colour maps of the head: lit skin, then scalp hair and beard mixed in by weight,
        plus the highlight where there is no hair."""
        qx, qy, qz = self.q
        hw, theta = self.hair_weight(qx, qy, qz)
        tex = self.strands(theta, qy)
        hair_mix = hw
        beard = beard_weight(self)
        if beard is not None:
            idx, bw, btex = beard
            tex[idx] += (btex - tex[idx]) * bw
            hair_mix[idx] = np.maximum(hw[idx], bw)
        spec = nh * e3(0.12 * self.dif)
        spec *= 1.0 - hair_mix
        # colour = lit * (skin * (1 - mix) + hair * tex * mix) + spec, channel by channel.
        w_skin = lit * (1.0 - hair_mix)
        w_hair = lit * hair_mix
        w_hair *= tex
        rgb = []
        for k in range(3):
            v = w_skin * e3(self.skin[:, k] * self.light_rgb[:, k])
            v += w_hair * e3(self.hair[:, k] * self.light_rgb[:, k])
            v += spec
            rgb.append(v)
        return rgb

    def lut_index(self, x: np.ndarray, lo: float, step: float, k: int) -> np.ndarray:
        """Flat indices into per-image tables (B, k) sampled at lo + i * step, for maps ``x``."""
        # The image offset is added as an integer so that an image's result does not
        # depend on its position in the batch (float32 would round differently).
        idx = x * np.float32(1.0 / step) + np.float32(-lo / step)
        np.clip(idx, 0.0, k - 1.0, out=idx)
        flat = idx.astype(np.int32)
        flat += (np.arange(x.shape[0], dtype=np.int32) * k)[:, None, None]
        return flat

    def lut(self, table: np.ndarray, x: np.ndarray, lo: float, step: float) -> np.ndarray:
        """Per-image lookup: table (B, K) sampled at lo + i * step, read at maps ``x``."""
        return np.take(table.ravel(), self.lut_index(x, lo, step, table.shape[1]))

    def hair_weight(
        self, x: np.ndarray, y: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Hair coverage of head-coordinate points and their azimuth around the head (maps)."""
        theta = np.arctan2(x, z)
        hl = self.lut(self.hairline_lut, theta, -np.pi, _H_STEP)
        hl -= y
        hl *= 0.7
        hl += 0.5
        return np.clip(hl, 0.0, 1.0, out=hl), theta

    def strands(self, theta: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Brightness factor of hair strands running from the crown, around 1 (maps)."""
        ip = self.ip
        prof = textures()["strand_profile"]
        t = theta * np.float32(22.0 * _STRAND_RES) + e3(ip.hair_seed * 900.0 * _STRAND_RES)
        t += e3(ip.hair_curl**2 * 1.2 * _STRAND_RES) * np.sin(y * 0.3 + e3(ip.hair_seed * 6.0))
        idx = t.astype(np.int32)
        idx &= len(prof) - 1
        return np.take(prof, idx)

    def hair_shell(self, canvas: Canvas) -> None:
        """Hair volume: a larger ellipsoid shown only where the scalp region is."""
        ip = self.ip
        vol, length = ip.hair_volume, ip.hair_length
        drop = 16.0 * length
        axes = np.stack(
            [
                ip.head_width * (1.05 + 0.1 * vol) + 3.0 * length,
                ip.head_height * (1.02 + 0.04 * vol) + drop,
                ip.head_depth * (1.04 + 0.07 * vol),
            ],
            -1,
        ).astype(F32)
        centre = np.stack(
            [np.zeros(self.n), HEAD_YC + drop - 1.5 - 2.0 * vol, -1.5 - 1.5 * vol], -1
        ).astype(F32)
        hit = cast_ellipsoid(
            self.X,
            self.Y,
            self.M,
            centre,
            axes,
            self.light,
            self.amb,
            self.dif,
            self.s * axes[:, 0],
        )
        x = hit.u[0] * e3(axes[:, 0])
        y = hit.u[1] * e3(axes[:, 1]) + e3(centre[:, 1])
        z = hit.u[2] * e3(axes[:, 2]) + e3(centre[:, 2])
        # The shell region sits just inside the scalp region so its edge hugs the head.
        hw, theta = self.hair_weight(x, y + 2.5, z)
        # Short hair has no shell beside and below the ears.
        sides = np.clip((e3(14.0 + 60.0 * length**2) - y) * 0.5, 0.0, 1.0)
        tex = self.strands(theta, y)
        # Depth gives the hair volume a darker interior toward the silhouette.
        shade = hit.lit * (0.8 + 0.2 * np.clip(hit.u[2], 0.0, 1.0))
        rgb = self.lit_rgb([e3(self.hair[:, k]) * tex for k in range(3)], shade)
        canvas.over(hit.z, hit.alpha * hw * sides, rgb)


def beard_weight(sc: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Facial hair on the bearded images of the batch, or None if nobody has a beard.

    Returns:
        (image indices (k,), coverage (k, H, W), stubble brightness factor (k, H, W)).
    """
    ip = sc.ip
    idx = np.nonzero(ip.beard > 0)[0]
    if len(idx) == 0:
        return None
    qx, qy, qz = (a[idx] for a in sc.q)
    dens = e3(ip.beard[idx])
    full = e3(ip.beard_style[idx])
    my = e3(sc.mouth_y[idx])
    mw = e3(ip.mouth_width[idx])
    ax = np.abs(qx)
    lip_top = my - e3(ip.lip_upper[idx])
    moustache = soft(np.minimum(lip_top + 0.3 - qy, qy - (lip_top - 5.0)), 0.7)
    moustache *= soft(mw + 1.5 - ax, 0.5)
    cheeks = soft(qy - (e3(sc.nose_y[idx]) + 4.0 - 0.35 * ax), 0.3)
    sideburn = soft(qy + 4.0, 0.4) * soft(14.0 - qz, 0.2) * soft(qz + 2.0, 0.3)
    region = np.maximum(moustache, full * np.maximum(cheeks, sideburn))
    region *= soft(qz + 8.0, 0.3)
    fine = textures()["fine"]
    iy = (qy * 1.6).astype(np.int32) % TILE
    ix = (qx * 1.6 + qz * 0.7).astype(np.int32) % TILE
    stub = fine[iy, ix]
    w = region * dens * np.clip(0.75 + 0.25 * stub, 0.0, 1.0)
    return idx, w, 0.7 + 0.25 * stub
