"""Procedural foreground objects: solids with relief, ray-traced into each view.

An object is a union of primitives (`shapes`) in its own frame, its foot point at the origin, drawn
from the seed with a real-world size in metres; the held-out families (OOD_FAMILIES) occur only in
the `ood` split. `render_object` traces it into a view at a pose: exact per-pixel z-depth and mask
from the pixel-centre rays, anti-aliased colour from 2 x 2 rays per pixel.
Families and details: docs/world.md, "Objects"."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskdepth.world import textures
from maskdepth.world.camera import Camera
from maskdepth.world.shading import SUPERSAMPLE, box_mean, lambert
from maskdepth.world.shapes import Primitive, intersect, surface_coords

FAMILIES = ("person", "crate", "ball", "vase", "chair", "table", "cone", "plant", "bin", "stool", "sign", "animal",
            "lamp")
OOD_FAMILIES = ("animal", "lamp")
TRAIN_FAMILIES = tuple(f for f in FAMILIES if f not in OOD_FAMILIES)


@dataclass(frozen=True)
class Foreground:
    id: int
    family: str
    height_m: float  # real-world height (metres)
    width_m: float  # largest horizontal extent (metres)
    parts: list = field(repr=False, compare=False, hash=False)

    @property
    def kind(self) -> str:  # the family; "kind" in older reports
        return self.family

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.min([p.bounds()[0] for p in self.parts], axis=0)
        hi = np.max([p.bounds()[1] for p in self.parts], axis=0)
        return lo, hi


def _t(rng, kinds, scale, ood, colour=None):
    pool = tuple(kinds) + (textures.OOD_KINDS if ood else ())
    pool = tuple(k for k in pool if ood or k not in textures.OOD_KINDS)
    return textures.random_texture(rng, pool, scale, colour=colour)


def _box(c, half, tex):
    return Primitive("box", tuple(c), tuple(half), 1, tex)


def _cyl(base, r0, length, r1, tex, axis=1):
    return Primitive("cylinder", tuple(base), (r0, length, r1), axis, tex)


def _ell(c, radii, tex):
    return Primitive("ellipsoid", tuple(c), tuple(radii), 1, tex)


def _person(rng, ood):
    h = 1.55 + 0.35 * rng.random() if rng.random() < 0.75 else 1.0 + 0.4 * rng.random()
    skin = textures.random_texture(rng, ("noise",), (0.05, 0.1), colour=np.array([0.95, 0.78, 0.62]) * (0.4 + 0.6 * rng.random()))
    shirt = _t(rng, ("stripes", "checks", "noise", "gradient", "fabric", "dots"), (0.03, 0.12), ood)
    trousers = _t(rng, ("noise", "gradient", "fabric", "stripes"), (0.05, 0.2), ood)
    shoes = textures.random_texture(rng, ("noise",), (0.05, 0.1), colour=0.05 + 0.3 * rng.random(3))
    stance = (0.05 + 0.05 * rng.random()) * h
    leg_r, arm_r = 0.05 * h, 0.033 * h
    hip = 0.47 * h
    torso_w = (0.15 + 0.04 * rng.random()) * h
    parts = [
        _cyl((-stance, 0.03 * h, 0.0), leg_r, hip - 0.03 * h, leg_r * 1.1, trousers),
        _cyl((stance, 0.03 * h, 0.0), leg_r, hip - 0.03 * h, leg_r * 1.1, trousers),
        _box((-stance, 0.015 * h, 0.03 * h), (leg_r * 1.1, 0.015 * h, 0.08 * h), shoes),
        _box((stance, 0.015 * h, 0.03 * h), (leg_r * 1.1, 0.015 * h, 0.08 * h), shoes),
        _ell((0.0, 0.66 * h, 0.0), (torso_w, 0.2 * h, 0.09 * h), shirt),
        _cyl((-torso_w - arm_r * 0.6, 0.45 * h, 0.0), arm_r, 0.36 * h, arm_r * 1.2, shirt),
        _cyl((torso_w + arm_r * 0.6, 0.45 * h, 0.0), arm_r, 0.36 * h, arm_r * 1.2, shirt),
        _cyl((0.0, 0.82 * h, 0.0), 0.028 * h, 0.06 * h, 0.028 * h, skin),
        _ell((0.0, 0.93 * h, 0.0), (0.055 * h, 0.07 * h, 0.06 * h), skin),
    ]
    return parts


def _crate(rng, ood):
    h = 0.3 + 0.9 * rng.random()
    w, d = h * (0.6 + 1.0 * rng.random()), h * (0.5 + 0.8 * rng.random())
    tex = _t(rng, ("planks", "noise", "stripes", "checks", "gradient", "tiles"), (0.05, 0.4), ood)
    parts = [_box((0.0, 0.5 * h, 0.0), (0.5 * w, 0.5 * h, 0.5 * d), tex)]
    if rng.random() < 0.3:  # a smaller box stacked on top
        h2 = h * (0.3 + 0.4 * rng.random())
        parts[0] = _box((0.0, 0.5 * (h - h2), 0.0), (0.5 * w, 0.5 * (h - h2), 0.5 * d), tex)
        parts.append(_box((0.1 * w * (rng.random() - 0.5), h - 0.5 * h2, 0.0), (0.35 * w, 0.5 * h2, 0.35 * d),
                          _t(rng, ("planks", "noise", "gradient"), (0.05, 0.3), ood)))
    return parts


def _ball(rng, ood):
    r = 0.12 + 0.4 * rng.random()
    return [_ell((0.0, r, 0.0), (r, r, r), _t(rng, ("stripes", "checks", "noise", "gradient", "dots"), (0.03, 0.2), ood))]


def _vase(rng, ood):
    h = 0.4 + 0.8 * rng.random()
    r = (0.12 + 0.1 * rng.random()) * h
    tex = _t(rng, ("gradient", "noise", "stripes", "dots"), (0.05, 0.2), ood)
    body = 0.55 * h
    return [
        _cyl((0.0, 0.0, 0.0), r * 0.85, body, r, tex),
        _cyl((0.0, body, 0.0), r, 0.25 * h, 0.35 * r, tex),
        _cyl((0.0, 0.8 * h, 0.0), 0.35 * r, 0.2 * h, 0.45 * r, tex),
    ]


def _chair(rng, ood):
    h = 0.8 + 0.3 * rng.random()
    seat_y, w, d, leg = 0.45 * h, 0.22 * h + 0.1 * rng.random(), 0.22 * h, 0.025
    wood = _t(rng, ("planks", "noise", "gradient"), (0.02, 0.1), ood)
    cushion = _t(rng, ("fabric", "noise", "checks", "stripes"), (0.03, 0.1), ood)
    parts = [_box((sx * (w - leg), 0.5 * seat_y, sz * (d - leg)), (leg, 0.5 * seat_y, leg), wood)
             for sx in (-1, 1) for sz in (-1, 1)]
    parts.append(_box((0.0, seat_y, 0.0), (w, 0.03 * h, d), cushion))
    parts.append(_box((0.0, 0.5 * (seat_y + h), -d + 0.03), (w, 0.5 * (h - seat_y), 0.03), cushion))
    return parts


def _table(rng, ood):
    h = 0.45 + 0.35 * rng.random()
    w, d = 0.5 + 0.9 * rng.random(), 0.4 + 0.6 * rng.random()
    wood = _t(rng, ("planks", "noise", "gradient", "tiles"), (0.03, 0.2), ood)
    top = 0.03 + 0.03 * rng.random()
    parts = [_box((0.0, h - 0.5 * top, 0.0), (0.5 * w, 0.5 * top, 0.5 * d), wood)]
    if rng.random() < 0.3:  # pedestal table
        parts.append(_cyl((0.0, 0.0, 0.0), 0.25 * min(w, d), 0.02, 0.25 * min(w, d), wood))
        parts.append(_cyl((0.0, 0.0, 0.0), 0.04, h - top, 0.04, wood))
    else:
        leg = 0.025 + 0.02 * rng.random()
        parts += [_box((sx * (0.5 * w - leg), 0.5 * (h - top), sz * (0.5 * d - leg)), (leg, 0.5 * (h - top), leg), wood)
                  for sx in (-1, 1) for sz in (-1, 1)]
    return parts


def _cone(rng, ood):
    h = 0.45 + 0.55 * rng.random()
    orange = np.array([0.95, 0.3 + 0.3 * rng.random(), 0.05])
    stripes = {"kind": "stripes", "c1": orange, "c2": np.array([0.95, 0.95, 0.95]), "scale": 0.1 * h,
               "axis": 1, "key": 1, "grain": 0.05}
    base = textures.random_texture(rng, ("noise",), (0.05, 0.1), colour=orange * 0.7)
    return [_box((0.0, 0.02 * h, 0.0), (0.3 * h, 0.02 * h, 0.3 * h), base),
            _cyl((0.0, 0.04 * h, 0.0), 0.22 * h, 0.96 * h, 0.04 * h, stripes)]


def _plant(rng, ood):
    h = 0.5 + 1.3 * rng.random()
    pot = _t(rng, ("gradient", "stripes", "noise", "tiles"), (0.05, 0.2), ood)
    leaves = textures.random_texture(rng, ("noise",), (0.02, 0.06), colour=[0.1, 0.3 + 0.3 * rng.random(), 0.08])
    pot_h = 0.25 * h
    parts = [_cyl((0.0, 0.0, 0.0), 0.11 * h, pot_h, 0.15 * h, pot)]
    for leaf in range(5):
        r = (0.1 + 0.08 * rng.random()) * h
        cy = h - r if leaf == 0 else min(h - r, (0.55 + 0.35 * rng.random()) * h)  # the top leaf sets the height
        parts.append(_ell(((rng.random() - 0.5) * 0.3 * h, cy, (rng.random() - 0.5) * 0.3 * h), (r, r, r), leaves))
    parts.append(_cyl((0.0, pot_h, 0.0), 0.015 * h, 0.4 * h, 0.01 * h, leaves))
    return parts


def _bin(rng, ood):
    h = 0.5 + 0.6 * rng.random()
    r = (0.25 + 0.15 * rng.random()) * h
    tex = _t(rng, ("gradient", "noise", "stripes"), (0.05, 0.3), ood)
    return [_cyl((0.0, 0.0, 0.0), 0.9 * r, 0.95 * h, r, tex), _cyl((0.0, 0.95 * h, 0.0), 1.05 * r, 0.05 * h, 1.05 * r, tex)]


def _stool(rng, ood):
    """A stool: a seat carried on one pole over a round base, or on three or four thin legs."""
    h = 0.45 + 0.4 * rng.random()
    seat_r, seat_t = 0.14 + 0.08 * rng.random(), 0.03 + 0.03 * rng.random()
    frame = _t(rng, ("gradient", "noise", "planks"), (0.05, 0.3), ood)
    seat = _t(rng, ("fabric", "noise", "gradient", "planks", "checks"), (0.03, 0.1), ood)
    parts = [_cyl((0.0, h - seat_t, 0.0), seat_r, seat_t, seat_r, seat)]
    if rng.random() < 0.5:  # bar stool: one pole on a round base
        pole = 0.015 + 0.015 * rng.random()
        parts += [_cyl((0.0, 0.0, 0.0), 0.9 * seat_r, 0.02, 0.85 * seat_r, frame),
                  _cyl((0.0, 0.02, 0.0), pole, h - seat_t - 0.02, pole, frame)]
    else:
        legs, leg = (3, 4)[int(rng.random() < 0.5)], 0.01 + 0.01 * rng.random()
        angles = rng.random() * np.pi + 2 * np.pi * np.arange(legs) / legs
        parts += [_cyl((0.8 * seat_r * np.cos(a), 0.0, 0.8 * seat_r * np.sin(a)), leg, h - seat_t, leg, frame)
                  for a in angles]
    return parts


def _sign(rng, ood):
    """A sign or notice board carried high on one or two thin posts."""
    h = 1.0 + 1.2 * rng.random()
    w, bh = 0.3 + 0.6 * rng.random(), 0.2 + 0.4 * rng.random()
    bh = min(bh, 0.5 * h)
    board = _t(rng, ("stripes", "checks", "gradient", "noise", "dots", "tiles"), (0.03, 0.15), ood)
    metal = _t(rng, ("gradient", "noise"), (0.1, 0.4), ood)
    post = 0.015 + 0.02 * rng.random()
    parts = [_box((0.0, h - 0.5 * bh, 0.0), (0.5 * w, 0.5 * bh, 0.01 + 0.01 * rng.random()), board)]
    xs = (0.0,) if rng.random() < 0.6 else (-0.35 * w, 0.35 * w)
    parts += [_cyl((x, 0.0, -0.03 - post), post, h - 0.1 * bh, post, metal) for x in xs]
    if rng.random() < 0.5:  # a base plate or foot
        parts.append(_box((0.0, 0.01, -0.03 - post), (min(0.45 * w, 0.15 + abs(xs[-1])), 0.01, 0.15), metal))
    return parts


def _animal(rng, ood):
    """A four-legged animal (dog- to calf-sized): body, legs, neck, head, tail."""
    h = 0.4 + 0.8 * rng.random()
    fur = _t(rng, ("noise", "gradient", "dots"), (0.03, 0.15), ood, colour=0.15 + 0.7 * rng.random() * np.array([1.0, 0.8, 0.6]))
    body_l, body_r = 0.45 * h + 0.2 * h * rng.random(), 0.18 * h
    leg_h = 0.5 * h
    parts = [_ell((0.0, leg_h + 0.5 * body_r, 0.0), (0.7 * body_r, body_r, body_l), fur)]
    parts += [_cyl((sx * 0.45 * body_r, 0.0, sz * 0.7 * body_l), 0.06 * h, leg_h + 0.4 * body_r, 0.07 * h, fur)
              for sx in (-1, 1) for sz in (-1, 1)]
    neck_z = 0.9 * body_l
    parts.append(_cyl((0.0, leg_h + 0.5 * body_r, neck_z), 0.08 * h, 0.35 * h, 0.07 * h, fur))
    parts.append(_ell((0.0, h - 0.1 * h, neck_z + 0.08 * h), (0.09 * h, 0.1 * h, 0.16 * h), fur))
    parts.append(_cyl((0.0, leg_h + body_r, -body_l), 0.02 * h, 0.3 * h, 0.01 * h, fur, axis=2))
    return parts


def _lamp(rng, ood):
    """A floor lamp: a round base, a thin pole and a shade."""
    h = 1.2 + 0.6 * rng.random()
    metal = _t(rng, ("gradient", "noise"), (0.1, 0.4), ood)
    shade = _t(rng, ("fabric", "gradient", "noise", "stripes"), (0.03, 0.1), ood)
    sh = (0.2 + 0.1 * rng.random()) * h
    r = (0.12 + 0.08 * rng.random()) * h
    return [_cyl((0.0, 0.0, 0.0), 0.14 * h, 0.03, 0.13 * h, metal),
            _cyl((0.0, 0.03, 0.0), 0.015, h - sh - 0.03, 0.015, metal),
            _cyl((0.0, h - sh, 0.0), r, sh, 0.6 * r, shade)]


_BUILDERS = {"person": _person, "crate": _crate, "ball": _ball, "vase": _vase, "chair": _chair, "table": _table,
             "cone": _cone, "plant": _plant, "bin": _bin, "stool": _stool, "sign": _sign, "animal": _animal,
             "lamp": _lamp}


def foreground_params(seed: int, fg_id: int, ood: bool = False) -> Foreground:
    """Draw foreground `fg_id` of the source set `seed` (no rendering).

    Training and unseen objects cycle through TRAIN_FAMILIES with the id (people more often),
    so every run of consecutive ids mixes families; ood objects (`ood=True`) cycle through
    OOD_FAMILIES and may use the held-out texture kinds.
    """
    rng = np.random.default_rng([int(seed), 2, int(fg_id)])
    pool = OOD_FAMILIES if ood else TRAIN_FAMILIES
    family = pool[fg_id % len(pool)] if ood or rng.random() < 0.85 else "person"
    parts = _BUILDERS[family](rng, ood)
    lo, hi = np.min([p.bounds()[0] for p in parts], axis=0), np.max([p.bounds()[1] for p in parts], axis=0)
    return Foreground(int(fg_id), family, float(hi[1]), float(max(hi[0] - lo[0], hi[2] - lo[2])), parts)


def coverage(fg: Foreground, rows: int = 24) -> float:
    """Fraction of the object's front bounding rectangle (width_m x height_m) that it covers.

    Placement uses it to aim at a mask *area*: a chair or a person covers far less of its box
    than a ball or a crate of the same height. Traced orthographically on a coarse grid."""
    lo, hi = fg.bounds()
    cols = max(1, int(np.ceil(fg.width_m / fg.height_m * rows)))
    x = lo[0] + (np.arange(cols) + 0.5) * (hi[0] - lo[0]) / cols
    y = (np.arange(rows) + 0.5) * fg.height_m / rows
    x, y = np.meshgrid(x, y)
    hit = intersect(fg.parts, (x, y, np.full(x.shape, lo[2] - 1.0)), (0.0, 0.0, 1.0))
    return float(np.isfinite(hit["t"]).sum() / (rows * cols))


def _to_local(x, z, sin_yaw, cos_yaw):
    return x * cos_yaw - z * sin_yaw, x * sin_yaw + z * cos_yaw


def object_window(fg: Foreground, cam: Camera, pose, size: int):
    """Pixel window (y0, y1, x0, x1) that holds the object's projection (clipped to the image)."""
    x, z, sy, cy, scale = pose
    lo, hi = fg.bounds()
    lo, hi = lo * scale, hi * scale
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    wx = x + corners[:, 0] * cy + corners[:, 2] * sy
    wz = z - corners[:, 0] * sy + corners[:, 2] * cy
    return cam.pixel_window(wx, corners[:, 1], wz, size)


def _shade(fg: Foreground, hit, world_normal, light):
    rgb = np.zeros(hit["t"].shape + (3,))
    s, t = surface_coords(hit["point"], hit["normal"])
    for index in np.unique(hit["index"]):
        if index < 0:
            continue
        sel = hit["index"] == index
        rgb[sel] = textures.shade(fg.parts[index].texture, s[sel], t[sel])
    return np.clip(rgb * lambert(world_normal, light)[..., None], 0.0, 1.0)


def render_object(fg: Foreground, cam: Camera, pose, size: int, light) -> dict | None:
    """The object in a view at `pose` = (x, z, sin_yaw, cos_yaw, scale): foot at world (x, 0, z),
    turned by the yaw about the vertical, every length multiplied by `scale`.

    Returns None when no part of it is in the image, else the window (y0, y1, x0, x1) and
    float32 arrays over it: depth (z-depth of the pixel-centre ray, inf where it misses),
    alpha (share of the 2 x 2 colour rays that hit) and rgb (their mean colour, premultiplied
    by alpha, in steps of 1/255, [3, h, w])."""
    y0, y1, x0, x1 = object_window(fg, cam, pose, size)
    if y0 >= y1 or x0 >= x1:
        return None
    h, w = y1 - y0, x1 - x0
    k = SUPERSAMPLE
    # pixel centres, then k x k sub-samples, in one batch of rays
    uc = (np.arange(x0, x1) + 0.5) / size
    vc = (np.arange(y0, y1) + 0.5) / size
    us = (np.arange(x0 * k, x1 * k) + 0.5) / (size * k)
    vs = (np.arange(y0 * k, y1 * k) + 0.5) / (size * k)
    u = np.concatenate([np.broadcast_to(uc[None, :], (h, w)).ravel(), np.broadcast_to(us[None, :], (h * k, w * k)).ravel()])
    v = np.concatenate([np.broadcast_to(vc[:, None], (h, w)).ravel(), np.broadcast_to(vs[:, None], (h * k, w * k)).ravel()])
    dx, dy, dz = cam.rays(u, v)
    px, pz, sy, cy, scale = pose
    # The object scaled by `scale` meets a ray where the unscaled one meets the ray scaled
    # by 1 / scale, at the same t: the z-depth stays exact and normals are unchanged.
    ox, oz = _to_local(cam.x - px, 0.0 - pz, sy, cy)
    ldx, ldz = _to_local(dx, dz, sy, cy)
    inv = 1.0 / scale
    hit = intersect(fg.parts, (ox * inv, cam.height * inv, oz * inv), (ldx * inv, dy * inv, ldz * inv))
    n = hit["normal"]
    world_normal = (n[0] * cy + n[2] * sy, n[1], n[2] * cy - n[0] * sy)
    depth = hit["t"][: h * w].reshape(h, w)
    if not np.isfinite(depth).any() and not np.isfinite(hit["t"][h * w:]).any():
        return None
    m = h * w  # the first m rays are the pixel centres, the rest the colour sub-samples
    sub = {"t": hit["t"][m:], "index": hit["index"][m:], "normal": [a[m:] for a in n], "point": [a[m:] for a in hit["point"]]}
    sub_hit = np.isfinite(sub["t"])
    sub_rgb = _shade(fg, sub, [a[m:] for a in world_normal], light)
    sub_rgb = np.where(sub_hit[:, None], sub_rgb, 0.0).reshape(h * k, w * k, 3)
    alpha = sub_hit.astype(np.float64).reshape(h * k, w * k, 1)
    return {
        "window": (y0, y1, x0, x1),
        "depth": depth.astype(np.float32),
        "alpha": box_mean(alpha)[..., 0].astype(np.float32),
        # premultiplied colour in steps of 1/255, as an 8-bit image holds it (and `objects` stores it)
        "rgb": (np.floor(np.ascontiguousarray(box_mean(sub_rgb).transpose(2, 0, 1)) * 255.0 + 0.5)
                .astype(np.float32) / np.float32(255.0)),
    }
