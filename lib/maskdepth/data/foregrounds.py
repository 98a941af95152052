"""Procedural foreground objects: RGBA sprites with a real-world height and a foot point.

Each object (people-like figures, boxes, balls, bottles, chairs, traffic cones, potted
plants) is a union of simple shapes described by signed distance functions in metres; the
alpha channel is the analytic pixel coverage clip(0.5 - sdf / pixel, 0, 1), so edges are
anti-aliased at any resolution. The sprite is rendered at a canonical height of
`resolution` pixels: the object's top touches row 0, its base touches the bottom edge, and
its foot point (where it stands on the ground) is at the bottom edge, column `foot_x`.
Colour is stored un-premultiplied (RGBA uint8). Only IEEE basic operations and sqrt are
used, so sprites are byte-identical on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskdepth.data import textures

KINDS = ("person", "box", "ball", "bottle", "chair", "cone", "plant")


@dataclass(frozen=True)
class Foreground:
    id: int
    kind: str
    height_m: float  # real-world height in metres
    width_m: float  # real-world width of the sprite in metres
    parts: list = field(repr=False, compare=False, hash=False)


# --- signed distance functions (metres; negative inside) ---------------------------------


def _box(x, y, cx, cy, hw, hh, r=0.0):
    qx = np.abs(x - cx) - (hw - r)
    qy = np.abs(y - cy) - (hh - r)
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def _circle(x, y, cx, cy, r):
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - r


def _capsule(x, y, x0, y0, x1, y1, r):
    px, py = x - x0, y - y0
    bx, by = x1 - x0, y1 - y0
    h = np.clip((px * bx + py * by) / (bx * bx + by * by), 0.0, 1.0)
    return np.sqrt((px - bx * h) ** 2 + (py - by * h) ** 2) - r


def _trapezoid(x, y, cx, y0, y1, hw0, hw1):
    """Symmetric trapezoid from half-width hw0 at y0 to hw1 at y1 (approximate SDF: fine for AA)."""
    slope = (hw1 - hw0) / (y1 - y0)
    half = hw0 + slope * (y - y0)
    side = (np.abs(x - cx) - half) / np.sqrt(1.0 + slope * slope)
    return np.maximum(side, np.maximum(y0 - y, y - y1))


def _sdf(shape, x, y):
    name, *args = shape
    return {"box": _box, "circle": _circle, "capsule": _capsule, "trapezoid": _trapezoid}[name](x, y, *args)


# --- object descriptions ------------------------------------------------------------------


def _part(shape, texture, shading="flat"):
    return {"shape": shape, "texture": texture, "shading": shading}


def _solid(colour):
    c = np.asarray(colour, dtype=np.float64)
    return {"kind": "gradient", "c1": c, "c2": c * 0.8, "scale": 0.5, "axis": 0, "key": 0, "grain": 0.04}


def _person(rng, h):
    skin = np.array([0.95, 0.78, 0.62]) * (0.45 + 0.55 * rng.random())
    shirt = textures.random_texture(rng, ("stripes", "checks", "noise", "gradient"), (0.04, 0.15))
    trousers = textures.random_texture(rng, ("noise", "gradient", "stripes"), (0.05, 0.3))
    shoes = _solid(0.1 + 0.3 * rng.random(3))
    stance = (0.02 + 0.06 * rng.random()) * h
    arm_out = (0.02 + 0.1 * rng.random()) * h
    leg_r, arm_r = 0.045 * h, 0.034 * h
    parts = [
        _part(("capsule", -0.06 * h, 0.47 * h, -0.06 * h - stance, leg_r, leg_r), trousers),
        _part(("capsule", 0.06 * h, 0.47 * h, 0.06 * h + stance, leg_r, leg_r), trousers),
        _part(("box", -0.06 * h - stance, 0.015 * h, 0.06 * h, 0.015 * h, 0.01 * h), shoes),
        _part(("box", 0.06 * h + stance, 0.015 * h, 0.06 * h, 0.015 * h, 0.01 * h), shoes),
        _part(("capsule", -0.15 * h, 0.79 * h, -0.17 * h - arm_out, 0.47 * h, arm_r), shirt),
        _part(("capsule", 0.15 * h, 0.79 * h, 0.17 * h + arm_out, 0.47 * h, arm_r), shirt),
        _part(("box", 0.0, 0.66 * h, 0.15 * h, 0.18 * h, 0.04 * h), shirt, "cylinder"),
        _part(("box", 0.0, 0.86 * h, 0.03 * h, 0.04 * h), _solid(skin)),
        _part(("circle", 0.0, 0.93 * h, 0.065 * h), _solid(skin), "sphere"),
        _part(("box", 0.0, 0.975 * h, 0.06 * h, 0.025 * h, 0.02 * h), _solid(0.05 + 0.4 * rng.random(3))),
    ]
    width = 2 * (0.2 * h + arm_out + arm_r)
    return parts, max(width, 2 * (0.12 * h + stance))


def _box_object(rng, h):
    w = h * (0.5 + 1.1 * rng.random())
    front = textures.random_texture(rng, ("noise", "stripes", "checks", "gradient"), (0.05, 0.4))
    top_c = np.asarray(front["c1"]) * 1.15
    side_c = np.asarray(front["c1"]) * 0.6
    depth_px = 0.15 * h
    parts = [
        _part(("box", 0.0, 0.425 * h, 0.5 * w - 0.5 * depth_px, 0.425 * h, 0.005 * h), front),
        _part(("trapezoid", 0.0, 0.85 * h, h, 0.5 * w - 0.5 * depth_px, 0.5 * w - 0.9 * depth_px), _solid(top_c)),
        _part(("box", 0.5 * w - 0.45 * depth_px, 0.5 * h, 0.05 * depth_px, 0.35 * h), _solid(side_c)),
    ]
    return parts, w


def _ball(rng, h):
    tex = textures.random_texture(rng, ("stripes", "checks", "noise", "gradient"), (0.03, 0.2))
    return [_part(("circle", 0.0, 0.5 * h, 0.5 * h), tex, "sphere")], h


def _bottle(rng, h):
    glass = textures.random_texture(rng, ("gradient", "noise"), (0.05, 0.2))
    label = textures.random_texture(rng, ("stripes", "checks"), (0.01, 0.04))
    bw = (0.17 + 0.1 * rng.random()) * h
    parts = [
        _part(("box", 0.0, 0.33 * h, bw, 0.33 * h, 0.2 * bw), glass, "cylinder"),
        _part(("trapezoid", 0.0, 0.64 * h, 0.8 * h, bw, 0.28 * bw), glass, "cylinder"),
        _part(("box", 0.0, 0.87 * h, 0.28 * bw, 0.09 * h), glass, "cylinder"),
        _part(("box", 0.0, 0.3 * h, bw, 0.12 * h), label, "cylinder"),
        _part(("box", 0.0, 0.965 * h, 0.34 * bw, 0.035 * h, 0.01 * h), _solid(rng.random(3))),
    ]
    return parts, 2 * bw


def _chair(rng, h):
    """Front view of a chair with an upholstered backrest (a solid silhouette, like real chairs)."""
    wood = textures.random_texture(rng, ("stripes", "noise", "gradient"), (0.02, 0.1))
    cushion = textures.random_texture(rng, ("noise", "checks", "stripes", "gradient"), (0.03, 0.12))
    seat_y, seat_w, leg = 0.47 * h, 0.26 * h, 0.035 * h
    rest_bottom = (0.55 + 0.15 * rng.random()) * h
    parts = [
        _part(("box", -seat_w + leg, seat_y / 2, leg, seat_y / 2), wood),
        _part(("box", seat_w - leg, seat_y / 2, leg, seat_y / 2), wood),
        _part(("box", -seat_w + leg, (seat_y + h) / 2, leg, (h - seat_y) / 2), wood),
        _part(("box", seat_w - leg, (seat_y + h) / 2, leg, (h - seat_y) / 2), wood),
        _part(("box", 0.0, seat_y, seat_w, 0.045 * h, 0.015 * h), cushion),
        _part(("box", 0.0, (rest_bottom + 0.97 * h) / 2, seat_w - leg, (0.97 * h - rest_bottom) / 2, 0.03 * h),
              cushion),
    ]
    return parts, 2 * seat_w


def _cone(rng, h):
    orange = np.array([0.95, 0.35 + 0.25 * rng.random(), 0.05])
    stripes = {"kind": "stripes", "c1": orange, "c2": np.array([0.95, 0.95, 0.95]), "scale": 0.1 * h,
               "axis": 1, "key": 1, "grain": 0.05}
    parts = [
        _part(("box", 0.0, 0.03 * h, 0.32 * h, 0.03 * h, 0.01 * h), _solid(orange * 0.8)),
        _part(("trapezoid", 0.0, 0.05 * h, h, 0.25 * h, 0.06 * h), stripes, "cylinder"),
    ]
    return parts, 0.64 * h


def _plant(rng, h):
    pot = textures.random_texture(rng, ("gradient", "stripes", "noise"), (0.05, 0.2))
    leaves = {"kind": "noise", "c1": np.array([0.1, 0.35 + 0.3 * rng.random(), 0.08]),
              "c2": np.array([0.3, 0.7, 0.2]) * (0.6 + 0.4 * rng.random()), "scale": 0.04 * h,
              "axis": 0, "key": int(rng.integers(1 << 30)), "grain": 0.1}
    pot_h = 0.25 * h
    parts = [
        _part(("trapezoid", 0.0, 0.0, pot_h, 0.12 * h, 0.16 * h), pot, "cylinder"),
        _part(("box", 0.0, 0.45 * h, 0.015 * h, 0.2 * h), _solid([0.35, 0.22, 0.1])),
    ]
    for leaf in range(5):
        cx = (rng.random() - 0.5) * 0.3 * h
        r = (0.1 + 0.08 * rng.random()) * h
        cy = h - r if leaf == 0 else min(h - r, (0.55 + 0.35 * rng.random()) * h)  # the top leaf sets the height
        parts.append(_part(("circle", cx, cy, r), leaves, "sphere"))
    return parts, 0.7 * h


# Real-world height ranges (metres). Props are "big" ones (gym balls, floor vases and water
# jugs, road cones, packing crates): small objects only look prominent in a photo taken from
# a few centimetres, which a floor-standing scene cannot show.
_BUILDERS = {
    "person": (_person, 1.5, 1.9),
    "box": (_box_object, 0.4, 1.2),
    "ball": (_ball, 0.4, 0.9),
    "bottle": (_bottle, 0.6, 1.1),
    "chair": (_chair, 0.8, 1.05),
    "cone": (_cone, 0.6, 1.0),
    "plant": (_plant, 0.6, 1.8),
}


def foreground_params(seed: int, fg_id: int) -> Foreground:
    """Draw foreground `fg_id` of the source set `seed` (no rendering).

    Kinds cycle with the id (people every 7th id plus extra people), so every subset of
    consecutive ids mixes kinds.
    """
    rng = np.random.default_rng([int(seed), 2, int(fg_id)])
    kind = KINDS[fg_id % len(KINDS)] if rng.random() < 0.8 else "person"
    builder, lo, hi = _BUILDERS[kind]
    height = float(lo + (hi - lo) * rng.random())
    parts, width = builder(rng, height)
    return Foreground(int(fg_id), kind, height, float(width), parts)


def coverage(fg: Foreground, rows: int = 32) -> float:
    """Fraction of the object's bounding box (width_m x height_m) that it covers.

    Placement uses it to aim at a mask *area*: a chair or a person covers far less of its box
    than a ball or a crate of the same height. Evaluated on a coarse grid of cell centres.
    """
    cols = max(1, int(np.ceil(fg.width_m / fg.height_m * rows)))
    x = (np.arange(cols, dtype=np.float64) + 0.5 - cols / 2.0) * (fg.width_m / cols)
    y = (np.arange(rows, dtype=np.float64) + 0.5) * (fg.height_m / rows)
    x, y = np.meshgrid(x, y)
    inside = np.zeros(x.shape, dtype=bool)
    for part in fg.parts:
        inside |= _sdf(part["shape"], x, y) < 0.0
    return float(inside.mean())


def sprite_width(fg: Foreground, resolution: int) -> int:
    """Width in pixels of the sprite canvas at canonical height `resolution` (+2 px margin each side)."""
    return int(np.ceil(fg.width_m / fg.height_m * resolution)) + 4


def render_foreground(fg: Foreground, resolution: int) -> tuple[np.ndarray, float]:
    """RGBA uint8 [resolution, W, 4] (un-premultiplied colour) and the foot point column (pixels).

    The foot point is the bottom-centre of the canvas: x = W / 2, y = resolution.
    """
    width = sprite_width(fg, resolution)
    pixel = fg.height_m / resolution
    x = (np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) * pixel
    y = fg.height_m - (np.arange(resolution, dtype=np.float64) + 0.5) * pixel
    x, y = np.meshgrid(x, y)
    rgb = np.zeros(x.shape + (3,))  # premultiplied while compositing the parts
    alpha = np.zeros(x.shape)
    for part in fg.parts:
        a = np.clip(0.5 - _sdf(part["shape"], x, y) / pixel, 0.0, 1.0)
        cover = a > 0.0  # colour only the pixels the part touches
        if not cover.any():
            continue
        xs, ys, ac = x[cover], y[cover], a[cover][:, None]
        colour = textures.shade(part["texture"], xs, ys) * _shading(part, xs, ys, fg)[:, None]
        rgb[cover] = colour * ac + rgb[cover] * (1.0 - ac)
        alpha[cover] = a[cover] + alpha[cover] * (1.0 - a[cover])
    with np.errstate(divide="ignore", invalid="ignore"):
        straight = np.where(alpha[..., None] > 0.0, rgb / alpha[..., None], 0.0)
    rgba = np.concatenate([np.clip(straight, 0.0, 1.0), alpha[..., None]], axis=-1)
    return np.floor(rgba * 255.0 + 0.5).astype(np.uint8), width / 2.0


def _shading(part, x, y, fg):
    """Cheap lighting from the upper left: flat, cylinder (across x) or sphere."""
    name, *args = part["shape"]
    if part["shading"] == "flat":
        return 0.85 + 0.15 * np.clip(y / fg.height_m, 0.0, 1.0)
    if name == "circle":
        cx, cy, r = args
        dx, dy = (x - cx) / r, (y - cy) / r
    else:
        dx, dy = x / (0.5 * fg.width_m), np.zeros_like(y)
    if part["shading"] == "cylinder":
        dy = np.zeros_like(dy)
    nz = np.sqrt(np.clip(1.0 - dx * dx - dy * dy, 0.0, 1.0))
    # Light direction (-0.4, 0.5, 0.77) (normalised-ish): diffuse plus ambient.
    return 0.35 + 0.75 * np.clip(-0.4 * dx + 0.5 * dy + 0.77 * nz, 0.0, 1.0)
