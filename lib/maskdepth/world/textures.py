"""Procedural surface textures shared by backgrounds and foregrounds.

Only IEEE-754 basic operations (+, -, *, /, floor, sqrt) and unsigned integer hashing, never
transcendental functions whose last bit may differ between CPUs: that is what makes the same seed
give byte-identical sources on any machine. A texture is a small dict drawn by `random_texture`
and evaluated by `shade(texture, s, t)` at surface coordinates in metres. Photographs are not flat
colours, so `natural`, `wood` and `cloth` and half of all colours follow photographic statistics.
Details: docs/world.md, "Textures"."""

from __future__ import annotations

import numpy as np

KINDS = ("checks", "stripes", "bricks", "noise", "gradient", "windows", "planks", "tiles", "marble", "fabric", "dots",
         "natural", "wood", "cloth")
# Held out of every train split: seen only in the `ood` validation split (see data_manifests/README.md).
OOD_KINDS = ("marble",)
TRAIN_KINDS = tuple(k for k in KINDS if k not in OOD_KINDS)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _as_u64(x) -> np.ndarray:
    """Integers (possibly negative) as uint64 bit patterns (two's complement wrap, well defined)."""
    return np.asarray(x, dtype=np.int64).view(np.uint64)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-spread uint64 hash of a uint64 array."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def hash_ints(*values) -> np.ndarray:
    """Hash any number of broadcastable integer arrays into one uint64 array."""
    h = np.zeros((), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for v in values:
            h = mix64(h ^ _as_u64(v))
    return np.asarray(h)


def hash_uniform(*values) -> np.ndarray:
    """Uniform float64 in [0, 1) from integer keys: counter-based, so any subset is reproducible."""
    return (hash_ints(*values) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


_P1 = np.uint64(0xD6E8FEB86659FD93)
_P2 = np.uint64(0xA0761D6478BD642F)
_P3 = np.uint64(0xE7037ED1A0B428DB)


def lattice_uniform(key: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Uniform float64 in [0, 1) per integer lattice point (i, j) of noise `key`.

    One splitmix64 round over a multiplicative mix of the three integers: a third of the
    cost of `hash_uniform(key, i, j)`, which matters because textures call it per pixel."""
    with np.errstate(over="ignore"):
        h = _as_u64(i) * _P1 + _as_u64(j) * _P2 + np.uint64(int(key) & 0xFFFFFFFFFFFFFFFF) * _P3
        return (mix64(h) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def value_noise(s: np.ndarray, t: np.ndarray, key: int) -> np.ndarray:
    """Smooth lattice noise in [0, 1] (bilinear with a smoothstep fade)."""
    i = np.floor(s)
    j = np.floor(t)
    fs = s - i
    ft = t - j
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    ws = fs * fs * (3.0 - 2.0 * fs)
    wt = ft * ft * (3.0 - 2.0 * ft)
    a = lattice_uniform(key, i, j)
    b = lattice_uniform(key, i + 1, j)
    c = lattice_uniform(key, i, j + 1)
    d = lattice_uniform(key, i + 1, j + 1)
    top = a + (b - a) * ws
    bottom = c + (d - c) * ws
    return top + (bottom - top) * wt


def fbm(s: np.ndarray, t: np.ndarray, key: int, octaves: int = 3) -> np.ndarray:
    """Fractal noise in [0, 1]: octaves of value noise, each twice as fine and half as strong."""
    total = np.zeros(np.broadcast(s, t).shape)
    weight = 1.0
    norm = 0.0
    for octave in range(octaves):
        total = total + weight * value_noise(s, t, key * 8 + octave)
        norm += weight
        s = s * 2.0
        t = t * 2.0
        weight *= 0.5
    return total / norm


def random_colour(rng: np.random.Generator, lo: float = 0.08, hi: float = 0.95) -> np.ndarray:
    return lo + (hi - lo) * rng.random(3)


# Opponent colour axes (yellow-blue, red-green) in RGB: surfaces in photographs vary mostly in
# brightness, a little along yellow-blue (warm browns, greys, cool blues), least along red-green.
_WARM = np.array([1.0, 0.25, -1.1])
_GREEN = np.array([-0.7, 1.0, -0.3])


def natural_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour with the statistics of real surfaces: dark-heavy brightness, mostly low
    saturation, hues biased warm (wood, brick, skin, soil) over cool."""
    r = rng.random(4)
    lum = 0.05 + 0.85 * r[0] * r[0]
    sat = r[1] * r[1]
    rgb = lum * (1.0 + sat * (0.55 * (r[2] - 0.3) * _WARM + 0.35 * (r[3] - 0.5) * _GREEN))
    return np.clip(rgb, 0.02, 0.97)


def random_texture(rng: np.random.Generator, kinds=TRAIN_KINDS, scale=(0.2, 1.2), colour=None) -> dict:
    """Draw a texture: kind, two colours, a scale in metres, an axis and a noise key.

    `colour` fixes the base colour (e.g. skin, a traffic cone's orange)."""
    kind = kinds[int(rng.integers(len(kinds)))]
    if colour is not None:
        c1 = np.asarray(colour, dtype=np.float64)
    else:
        c1 = natural_colour(rng) if rng.random() < 0.5 else random_colour(rng)
    # The second colour is a related shade, so patterns look like materials, not confetti.
    c2 = np.clip(c1 * (0.45 + 0.5 * rng.random()) + 0.25 * rng.random(3) * rng.random(), 0.0, 1.0)
    return {
        "kind": kind,
        "c1": c1,
        "c2": c2,
        "scale": float(scale[0] + (scale[1] - scale[0]) * rng.random()),
        "axis": int(rng.integers(2)),
        "key": int(rng.integers(1 << 30)),
        "grain": float(0.04 + 0.12 * rng.random()),
    }


def _mix(c1: np.ndarray, c2: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = w[..., None]
    return c1 * (1.0 - w) + c2 * w


def shade(texture: dict, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (float64, shape s.shape + (3,)) of `texture` at surface coordinates (s, t)."""
    kind = texture["kind"]
    a = texture["scale"]
    c1 = np.asarray(texture["c1"], dtype=np.float64)
    c2 = np.asarray(texture["c2"], dtype=np.float64)
    key = texture["key"]
    ss, tt = (s, t) if texture.get("axis", 0) == 0 else (t, s)
    if kind == "checks":
        k = (np.floor(ss / a) + np.floor(tt / a)) % 2.0
        rgb = _mix(c1, c2, k)
    elif kind == "stripes":
        rgb = _mix(c1, c2, np.floor(ss / a) % 2.0)
    elif kind == "bricks":
        bh = a * 0.35
        row = np.floor(t / bh)
        x = s / a + 0.5 * (row % 2.0)
        col = np.floor(x)
        mortar = ((x - col) < 0.05) | ((t / bh - row) < 0.12)
        tone = 0.8 + 0.35 * hash_uniform(key, row.astype(np.int64), col.astype(np.int64))
        rgb = np.where(mortar[..., None], 0.5 * c2 + 0.4, c1 * tone[..., None])
    elif kind == "noise":
        rgb = _mix(c1, c2, fbm(ss / a, tt / a, key))
    elif kind == "gradient":
        rgb = _mix(c1, c2, np.clip(tt / (4.0 * a), 0.0, 1.0))
    elif kind == "windows":
        x = s / a
        y = t / (1.4 * a)
        fx = x - np.floor(x)
        fy = y - np.floor(y)
        glass = (fx > 0.25) & (fx < 0.75) & (fy > 0.3) & (fy < 0.8)
        lit = hash_uniform(key, np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)) > 0.7
        glass_rgb = np.where(lit[..., None], np.array([0.85, 0.8, 0.55]), 0.35 * c2)
        rgb = np.where(glass[..., None], glass_rgb, c1)
    elif kind == "planks":
        # Boards of width a along s, each with its own tone and a dark seam, grain along t.
        board = np.floor(ss / a)
        seam = (ss / a - board) < 0.04
        tone = 0.75 + 0.45 * hash_uniform(key, board.astype(np.int64))
        streak = fbm(ss / (0.05 * a), tt / (2.0 * a), key + 2, octaves=2)
        rgb = _mix(c1, c2, streak) * tone[..., None]
        rgb = np.where(seam[..., None], 0.35 * c1, rgb)
    elif kind == "tiles":
        i, j = np.floor(ss / a), np.floor(tt / a)
        fs, ft = ss / a - i, tt / a - j
        grout = (fs < 0.06) | (ft < 0.06)
        tone = 0.85 + 0.3 * hash_uniform(key, i.astype(np.int64), j.astype(np.int64))
        rgb = np.where(grout[..., None], 0.3 * c2 + 0.55, c1 * tone[..., None])
    elif kind == "marble":
        # Veins: a triangle wave of s warped by fractal noise (no transcendental functions).
        w = (ss + 2.5 * a * fbm(ss / a, tt / a, key, octaves=4)) / a
        tri = np.abs(2.0 * (w - np.floor(w)) - 1.0)
        vein = tri * tri * tri * tri
        rgb = _mix(c1, c2, vein)
    elif kind == "fabric":
        # A woven look: two crossing fine stripes plus a soft mottling.
        warp = np.floor(ss / (0.1 * a)) % 2.0
        weft = np.floor(tt / (0.1 * a)) % 2.0
        rgb = _mix(c1, c2, 0.35 * (warp * weft) + 0.4 * fbm(ss / a, tt / a, key, octaves=2))
    elif kind == "natural":
        # 1/f noise: six octaves, each twice as fine and half as strong (the amplitude spectrum
        # of photographs), modulating brightness; a coarser noise moves the hue between c1 and c2.
        lum = fbm(ss / a, tt / a, key, octaves=6)
        hue = value_noise(ss / (2.0 * a), tt / (2.0 * a), key + 3)
        rgb = _mix(c1, c2, hue) * (0.35 + 1.3 * lum)[..., None]
    elif kind == "wood":
        # Growth rings across s, bent by a slow noise, dark late-wood at the end of each ring;
        # fine streaks along the grain (t).
        bend = fbm(ss / (2.0 * a), tt / (6.0 * a), key, octaves=3)
        w = (ss + 1.2 * a * bend) / (0.12 * a)
        ring = w - np.floor(w)
        streak = fbm(ss / (0.02 * a), tt / (1.5 * a), key + 2, octaves=2)
        rgb = _mix(c1, c2, 0.65 * ring * ring * ring + 0.35 * streak)
    elif kind == "cloth":
        # A fine weave under soft folds: brightness bands along a warped coordinate.
        weave = (np.floor(ss / (0.04 * a)) + np.floor(tt / (0.04 * a))) % 2.0
        fold = ss / a + 0.8 * fbm(ss / a, tt / (3.0 * a), key, octaves=2)
        tri = np.abs(2.0 * (fold - np.floor(fold)) - 1.0)
        rgb = _mix(c1, c2, 0.15 * weave) * (0.6 + 0.5 * tri)[..., None]
    elif kind == "dots":
        fs = ss / a - np.floor(ss / a) - 0.5
        ft = tt / a - np.floor(tt / a) - 0.5
        rgb = _mix(c1, c2, (fs * fs + ft * ft < 0.09).astype(np.float64))
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    grain = texture.get("grain", 0.0)
    if grain:
        n = value_noise(s / (0.25 * a), t / (0.25 * a), key + 1)
        rgb = rgb * (1.0 - grain + 2.0 * grain * n)[..., None]
    return np.clip(rgb, 0.0, 1.0)
