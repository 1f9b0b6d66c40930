"""Identity parameters of the procedural face world: what stays fixed for one person.

An identity is one float32 row of :data:`IDENTITY_FIELDS`. Lengths are in pixels of a
112x112 crop at nominal scale (head coordinates: x to the image right, y down, z out
of the face), angles in degrees, everything else in [0, 1] unless said otherwise.
Identity lives in geometry and feature details: skin tone is drawn from a narrow band
shared by many people, so it never names a person on its own.
"""

from __future__ import annotations

import numpy as np

from vec2face.toyfaces._fields import column_index

# (name, low, high) of each field's sampling range; the order is the column order.
_FIELD_SPECS: tuple[tuple[str, float, float], ...] = (
    ("masculinity", 0.0, 1.0),  # latent that correlates jaw, brows, beard, hair length
    ("head_width", 32.0, 38.0),  # semi-axis x of the head ellipsoid
    ("head_height", 53.0, 61.0),  # semi-axis y
    ("head_depth", 43.0, 49.0),  # semi-axis z
    ("cheek_width", -0.04, 0.10),  # relative widening at the cheekbones
    ("jaw_width", -0.02, 0.32),  # relative widening at the jaw angle
    ("chin_width", 0.05, 0.4),  # relative widening just above the chin
    ("chin_protrusion", 0.0, 1.0),  # how far the chin stands out in profile
    ("brow_ridge", 0.0, 1.0),  # bulge of the brow ridge in profile
    ("eye_spacing", 12.0, 14.8),  # half the distance between the eye centres
    ("eye_height", -2.0, 2.0),  # vertical offset of the eyes
    ("eye_width", 5.0, 6.8),  # half width of the eye opening
    ("eye_open", 2.1, 3.4),  # half height of the eye opening
    ("eye_tilt", -1.4, 1.4),  # outer corner up (+) or down (-)
    ("iris_hue", 0.0, 1.0),  # position on the brown-hazel-green-blue-grey palette
    ("iris_dark", 0.0, 1.0),
    ("lid_crease", 1.6, 3.4),  # height of the upper-lid crease above the lid
    ("brow_height", 6.5, 10.5),  # gap between eye centre line and brow
    ("brow_thickness", 1.2, 3.2),
    ("brow_arch", 0.0, 3.0),
    ("brow_length", 8.0, 11.5),
    ("brow_slant", -1.8, 1.8),
    ("brow_dark", 0.0, 1.0),
    ("nose_length", 13.0, 20.0),
    ("nose_width", 4.5, 7.5),
    ("nose_protrusion", 7.0, 11.0),
    ("nose_bridge", 0.0, 1.0),  # narrow (0) to broad (1) bridge
    ("mouth_drop", 33.0, 39.0),  # mouth line below the eye line
    ("mouth_width", 9.0, 13.5),  # half width
    ("lip_upper", 1.5, 3.3),
    ("lip_lower", 2.0, 4.3),
    ("cupid_bow", 0.0, 1.0),
    ("lip_hue", 0.0, 1.0),
    ("skin_tone", 0.0, 1.0),  # narrow band of shared tones
    ("skin_red", 0.0, 1.0),
    ("hair_hue", 0.0, 1.0),  # black - brown - blond - auburn palette
    ("hair_light", 0.0, 1.0),
    ("hair_length", 0.0, 1.0),  # short crop (0) to shoulder length (1)
    ("hair_volume", 0.0, 1.0),
    ("hairline", 27.0, 39.0),  # forehead hairline height above the eye line
    ("hair_part", -1.0, 1.0),  # parting position, left to right
    ("hair_curl", 0.0, 1.0),
    ("hair_seed", 0.0, 1.0),  # strand pattern
    ("balding", 0.0, 1.0),  # how much the hairline recedes with age
    ("grey_onset", 28.0, 60.0),  # age in years at which greying starts
    ("ear_size", 10.5, 14.5),  # half height of the ear
    ("ear_y", -2.0, 6.0),
    ("ear_angle", 8.0, 35.0),  # how far the ears stand out
    ("beard", 0.0, 1.0),  # density of facial hair (0 for most)
    ("beard_style", 0.0, 1.0),  # moustache only (0) to full beard (1)
    ("blush", 0.0, 1.0),
    ("freckles", 0.0, 1.0),
    ("freckle_seed", 0.0, 1.0),
    ("mole1_x", -24.0, 24.0),
    ("mole1_y", -20.0, 44.0),
    ("mole1_size", 0.0, 1.6),  # radius; 0 means no mole
    ("mole2_x", -24.0, 24.0),
    ("mole2_y", -20.0, 44.0),
    ("mole2_size", 0.0, 1.6),
    ("mole3_x", -24.0, 24.0),
    ("mole3_y", -20.0, 44.0),
    ("mole3_size", 0.0, 1.6),
    ("glasses_style", 0.0, 1.0),  # frame shape/colour when the image shows glasses
)

IDENTITY_FIELDS: tuple[str, ...] = tuple(s[0] for s in _FIELD_SPECS)
IDENTITY_LOW = np.array([s[1] for s in _FIELD_SPECS], dtype=np.float32)
IDENTITY_HIGH = np.array([s[2] for s in _FIELD_SPECS], dtype=np.float32)
_INDEX = {name: i for i, name in enumerate(IDENTITY_FIELDS)}

# Weight of each field in the look-alike distance: how much it changes what a person
# sees at a glance (hair and face shape dominate; a mole or the strand seed barely).
_LOOKALIKE_WEIGHTS: dict[str, float] = {
    "masculinity": 1.0,
    "head_width": 1.0,
    "head_height": 0.8,
    "head_depth": 0.3,
    "cheek_width": 0.6,
    "jaw_width": 1.0,
    "chin_width": 0.6,
    "chin_protrusion": 0.4,
    "brow_ridge": 0.3,
    "eye_spacing": 0.8,
    "eye_height": 0.4,
    "eye_width": 0.6,
    "eye_open": 0.6,
    "eye_tilt": 0.4,
    "iris_hue": 0.4,
    "iris_dark": 0.3,
    "lid_crease": 0.3,
    "brow_height": 0.6,
    "brow_thickness": 0.8,
    "brow_arch": 0.5,
    "brow_length": 0.4,
    "brow_slant": 0.4,
    "brow_dark": 0.5,
    "nose_length": 0.8,
    "nose_width": 0.8,
    "nose_protrusion": 0.6,
    "nose_bridge": 0.4,
    "mouth_drop": 0.6,
    "mouth_width": 0.7,
    "lip_upper": 0.5,
    "lip_lower": 0.5,
    "cupid_bow": 0.3,
    "lip_hue": 0.3,
    "skin_tone": 0.8,
    "skin_red": 0.3,
    "hair_hue": 1.5,
    "hair_light": 1.2,
    "hair_length": 1.5,
    "hair_volume": 1.0,
    "hairline": 0.8,
    "hair_part": 0.5,
    "hair_curl": 0.6,
    "hair_seed": 0.0,
    "balding": 0.5,
    "grey_onset": 0.3,
    "ear_size": 0.4,
    "ear_y": 0.2,
    "ear_angle": 0.4,
    "beard": 1.2,
    "beard_style": 0.5,
    "blush": 0.2,
    "freckles": 0.5,
    "freckle_seed": 0.0,
    "mole1_x": 0.0,
    "mole1_y": 0.0,
    "mole1_size": 0.2,
    "mole2_x": 0.0,
    "mole2_y": 0.0,
    "mole2_size": 0.2,
    "mole3_x": 0.0,
    "mole3_y": 0.0,
    "mole3_size": 0.2,
    "glasses_style": 0.2,
}


def field_index(name: str) -> int:
    """Column of ``name`` in an identity row (ValueError: not an identity field)."""
    return column_index(_INDEX, name, "identity")


def _lerp(name: str, t: np.ndarray) -> np.ndarray:
    i = _INDEX[name]
    return IDENTITY_LOW[i] + (IDENTITY_HIGH[i] - IDENTITY_LOW[i]) * t


def sample_identity_params(n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` random identities.

    Most fields are independent uniforms over their range; a latent ``masculinity``
    couples jaw, brows, beard and hair length as in real populations, and marks such as
    moles, freckles and beards are absent for most people.

    Args:
        n: number of identities.
        rng: the random source; the same generator state gives the same rows.

    Returns:
        float32 array (n, len(IDENTITY_FIELDS)).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    k = len(IDENTITY_FIELDS)
    t = rng.random((n, k))
    out = IDENTITY_LOW + (IDENTITY_HIGH - IDENTITY_LOW) * t.astype(np.float32)
    m = rng.beta(0.6, 0.6, size=n)  # bimodal: most people lean to one side
    out[:, _INDEX["masculinity"]] = m

    def mix(name: str, toward: np.ndarray, strength: float) -> None:
        i = _INDEX[name]
        u = (1.0 - strength) * t[:, i] + strength * toward
        out[:, i] = _lerp(name, np.clip(u, 0.0, 1.0))

    mix("jaw_width", m, 0.45)
    mix("brow_ridge", m, 0.5)
    mix("brow_thickness", m, 0.4)
    mix("head_width", m, 0.25)
    mix("nose_width", m, 0.3)
    mix("lip_upper", 1.0 - m, 0.3)
    mix("eye_open", 1.0 - m, 0.25)
    mix("hair_length", (1.0 - m) ** 0.7, 0.75)
    mix("hair_volume", 1.0 - m, 0.35)

    beard_on = (rng.random(n) < 0.4 * m**2).astype(np.float32)
    out[:, _INDEX["beard"]] = beard_on * (0.35 + 0.65 * t[:, _INDEX["beard"]]).astype(np.float32)
    out[:, _INDEX["balding"]] = (t[:, _INDEX["balding"]] * (0.2 + 0.8 * m)).astype(np.float32)
    freck_on = rng.random(n) < 0.18
    out[:, _INDEX["freckles"]] = np.where(freck_on, out[:, _INDEX["freckles"]], 0.0)
    # Dark hair is the most common; a power pushes the palette position toward 0.
    out[:, _INDEX["hair_hue"]] = (t[:, _INDEX["hair_hue"]] ** 1.6).astype(np.float32)
    for j in (1, 2, 3):
        present = rng.random(n) < 0.35
        i = _INDEX[f"mole{j}_size"]
        out[:, i] = np.where(present, 0.5 + out[:, i] * 0.7, 0.0)
    return out.astype(np.float32, copy=False)


def identity_lookalike_features(params: np.ndarray) -> np.ndarray:
    """Features whose Euclidean distance says how alike two identities look.

    Each field is standardised by the spread of its sampling range (a uniform's
    standard deviation) and weighted by how visible it is; fields that do not change
    the look (pattern seeds, mole positions) get weight 0 and are dropped.

    Args:
        params: identity rows, float (n, len(IDENTITY_FIELDS)).

    Returns:
        float32 array (n, K) with K the number of fields of non-zero weight.
    """
    params = np.asarray(params, dtype=np.float32)
    if params.ndim != 2 or params.shape[1] != len(IDENTITY_FIELDS):
        raise ValueError(
            f"identity params must have shape (n, {len(IDENTITY_FIELDS)}), got {params.shape}"
        )
    weights = np.array([_LOOKALIKE_WEIGHTS[f] for f in IDENTITY_FIELDS], dtype=np.float32)
    keep = weights > 0
    centre = 0.5 * (IDENTITY_LOW + IDENTITY_HIGH)
    spread = (IDENTITY_HIGH - IDENTITY_LOW) / np.float32(np.sqrt(12.0))
    z = (params - centre) / spread * weights
    return np.ascontiguousarray(z[:, keep], dtype=np.float32)
