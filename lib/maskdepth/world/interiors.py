"""Close-range and cluttered interiors: what photographs mostly show, within a few metres.

The open families of `backgrounds` run to far walls and horizons from standing height; photographs
are mostly taken close to things. These families (`closeup`, `tabletop`, `clutter`, and held out
for `ood`: `shelf`, `workshop`) are indoor scenes of their own scale (`object_scale`, the camera's
`cam_height`), furnished with free-standing clutter that is part of the background render,
unlabelled instances of the object families included, so an object-like thing is not automatically
the foreground. Labels stay exact: composition takes the nearest surface at every pixel.
Each family and the walkable floor: docs/world.md, "Scenes"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskdepth.world.foregrounds import _BUILDERS, TRAIN_FAMILIES
from maskdepth.world.shapes import Primitive


@dataclass(frozen=True)
class Layout:
    width: tuple[float, float]  # wall to wall (m)
    back: tuple[float, float]  # camera plane to back wall (m)
    ceiling: tuple[float, float]
    cam_height: tuple[float, float]  # camera height range, training cameras (m above the floor)
    object_scale: tuple[float, float]  # size factor of the labelled object
    side: float  # share of the width kept for clutter on each side of the walkable floor
    back_zone: float  # depth (m) in front of the back wall kept for clutter
    wall_clutter: bool  # doors, windows, shelves... on the walls (`backgrounds._wall_clutter`)


LAYOUTS = {
    "closeup": Layout((2.5, 6.0), (1.3, 3.2), (2.4, 3.2), (0.4, 1.7), (0.35, 0.8), 0.22, 0.85, True),
    "tabletop": Layout((1.2, 3.0), (0.6, 1.8), (1.0, 1.8), (0.2, 0.6), (0.12, 0.3), 0.22, 0.3, False),
    "clutter": Layout((3.0, 7.0), (3.0, 8.0), (2.4, 3.0), (0.6, 2.0), (0.8, 1.05), 0.26, 1.2, True),
    "shelf": Layout((2.0, 4.5), (1.5, 3.2), (2.4, 3.0), (0.5, 1.6), (0.3, 0.7), 0.15, 0.65, False),
    "workshop": Layout((4.0, 7.0), (4.0, 8.0), (2.5, 3.5), (0.6, 1.9), (0.7, 1.0), 0.27, 1.3, True),
}
FAMILIES = tuple(LAYOUTS)


@dataclass(frozen=True)
class Room:
    left: float
    right: float
    back: float
    ceiling: float
    walk_x: tuple[float, float]
    walk_z: float


def draw_room(rng, family: str) -> Room:
    """Walls, ceiling and the walkable floor of an interior of `family` (camera plane z = 0)."""
    lay = LAYOUTS[family]
    width = lay.width[0] + (lay.width[1] - lay.width[0]) * rng.random()
    back = lay.back[0] + (lay.back[1] - lay.back[0]) * rng.random()
    ceiling = lay.ceiling[0] + (lay.ceiling[1] - lay.ceiling[0]) * rng.random()
    left = width * (0.4 + 0.2 * rng.random())
    # wall clutter (`backgrounds._wall_clutter`) protrudes up to 0.8 m: the walkable floor keeps clear of it
    side = max(lay.side * width, 0.85 if lay.wall_clutter else 0.0)
    return Room(-left, width - left, back, ceiling, (-left + side, width - left - side), back - lay.back_zone)


# --- placing parts ---------------------------------------------------------------------------


def _turn(p: Primitive, quarter: int) -> Primitive:
    """The primitive turned by quarter x 90 degrees about the vertical through the origin."""
    cx, cy, cz = p.centre
    sx, sy, sz = p.size
    axis = p.axis
    for _ in range(quarter % 4):  # (x, z) -> (z, -x)
        if p.kind == "cylinder":
            if axis == 0:  # it ran along +x, now along -z: its base moves to the far end
                axis, cx, cz = 2, cz, -cx - sy
            elif axis == 2:
                axis, cx, cz = 0, cz, -cx
            else:
                cx, cz = cz, -cx
        else:
            cx, cz, sx, sz = cz, -cx, sz, sx
    return Primitive(p.kind, (cx, cy, cz), (sx, sy, sz), axis, p.texture)


def _bounds(parts) -> tuple[np.ndarray, np.ndarray]:
    lo = np.min([p.bounds()[0] for p in parts], axis=0)
    hi = np.max([p.bounds()[1] for p in parts], axis=0)
    return lo, hi


def _place(parts, rng, region, scale: float = 1.0, quarter: int = 0, lift: float = 0.0):
    """Parts (foot at the origin) turned, scaled and moved to a random spot whose footprint lies
    inside region = (x0, x1, z0, z1), standing at height `lift`; shrunk to fit; [] if no room."""
    x0, x1, z0, z1 = region
    parts = [_turn(p, quarter) for p in parts]
    lo, hi = _bounds(parts)
    span_x, span_z = (hi[0] - lo[0]) * scale, (hi[2] - lo[2]) * scale
    if x1 - x0 < 0.02 or z1 - z0 < 0.02:
        return []
    fit = min(1.0, (x1 - x0) / max(span_x, 1e-9), (z1 - z0) / max(span_z, 1e-9))
    scale *= fit
    if scale < 0.05:
        return []
    span_x, span_z = (hi[0] - lo[0]) * scale, (hi[2] - lo[2]) * scale
    ox = x0 + (x1 - x0 - span_x) * rng.random() - lo[0] * scale
    oz = z0 + (z1 - z0 - span_z) * rng.random() - lo[2] * scale
    out = []
    for p in parts:
        c = p.centre
        tex = dict(p.texture, scale=p.texture["scale"] * scale) if p.texture else p.texture
        out.append(Primitive(p.kind, (ox + c[0] * scale, lift + c[1] * scale, oz + c[2] * scale),
                             tuple(v * scale for v in p.size), p.axis, tex))
    return out


def _box(x, y, z, hx, hy, hz, tex):
    return Primitive("box", (x, y, z), (hx, hy, hz), 1, tex)


def _cyl(x, y, z, r0, length, r1, tex):
    return Primitive("cylinder", (x, y, z), (r0, length, r1), 1, tex)


# --- things (foot at the origin, metres) -----------------------------------------------------


def _cabinet(rng, tex):
    w, h, d = 0.4 + 0.8 * rng.random(), 0.5 + 1.4 * rng.random(), 0.3 + 0.3 * rng.random()
    parts = [_box(0.0, 0.5 * h, 0.0, 0.5 * w, 0.5 * h, 0.5 * d, tex(("wood", "planks", "natural", "gradient"), (0.2, 0.8)))]
    if rng.random() < 0.5:  # a top of another material
        parts.append(_box(0.0, h + 0.015, 0.0, 0.5 * w + 0.02, 0.015, 0.5 * d + 0.02, tex(("wood", "natural", "tiles"), (0.2, 0.6))))
    return parts


def _boxes(rng, tex):
    """A stack of one to four boxes, each smaller than the one below."""
    parts, y = [], 0.0
    w, d = 0.3 + 0.5 * rng.random(), 0.25 + 0.4 * rng.random()
    for _ in range(int(rng.integers(1, 5))):
        h = 0.15 + 0.4 * rng.random()
        parts.append(_box(0.05 * (rng.random() - 0.5), y + 0.5 * h, 0.0, 0.5 * w, 0.5 * h, 0.5 * d,
                          tex(("natural", "planks", "gradient", "noise", "stripes"), (0.1, 0.5))))
        y += h
        w, d = w * (0.7 + 0.3 * rng.random()), d * (0.7 + 0.3 * rng.random())
    return parts


def _barrel(rng, tex):
    r, h = 0.2 + 0.15 * rng.random(), 0.5 + 0.5 * rng.random()
    return [_cyl(0.0, 0.0, 0.0, r, h, r * (0.9 + 0.1 * rng.random()), tex(("natural", "stripes", "gradient", "noise"), (0.1, 0.5)))]


def _sofa(rng, tex):
    w, d = 1.2 + 1.0 * rng.random(), 0.7 + 0.3 * rng.random()
    cloth = tex(("cloth", "fabric", "natural", "noise"), (0.1, 0.5))
    return [_box(0.0, 0.22, 0.0, 0.5 * w, 0.22, 0.5 * d, cloth),
            _box(0.0, 0.45, 0.5 * d - 0.1, 0.5 * w, 0.45, 0.1, cloth),
            _box(-0.5 * w + 0.09, 0.32, 0.0, 0.09, 0.32, 0.5 * d, cloth),
            _box(0.5 * w - 0.09, 0.32, 0.0, 0.09, 0.32, 0.5 * d, cloth)]


def _workbench(rng, tex):
    w, d, h = 1.2 + 0.8 * rng.random(), 0.5 + 0.3 * rng.random(), 0.8 + 0.15 * rng.random()
    wood = tex(("wood", "planks", "natural"), (0.2, 0.6))
    parts = [_box(0.0, h - 0.025, 0.0, 0.5 * w, 0.025, 0.5 * d, wood)]
    parts += [_box(sx * (0.5 * w - 0.04), 0.5 * (h - 0.05), sz * (0.5 * d - 0.04), 0.04, 0.5 * (h - 0.05), 0.04, wood)
              for sx in (-1, 1) for sz in (-1, 1)]
    for _ in range(int(rng.integers(1, 5))):  # tools and boxes on it
        tw, th, td = 0.05 + 0.3 * rng.random(), 0.02 + 0.15 * rng.random(), 0.05 + 0.2 * rng.random()
        parts.append(_box((rng.random() - 0.5) * (w - tw), h + 0.5 * th, (rng.random() - 0.5) * (d - td),
                          0.5 * tw, 0.5 * th, 0.5 * td, tex(("natural", "gradient", "noise"), (0.05, 0.3))))
    return parts


def _vehicle(rng, tex):
    """A car-like body with a cabin and four wheels (wheels are cylinders along x)."""
    length, w, h = 3.5 + 1.2 * rng.random(), 1.6 + 0.3 * rng.random(), 0.6 + 0.2 * rng.random()
    paint = tex(("gradient", "natural", "noise"), (0.5, 2.0))
    r = 0.3 + 0.05 * rng.random()
    parts = [_box(0.0, r + 0.5 * h - 0.1, 0.0, 0.5 * w, 0.5 * h, 0.5 * length, paint),
             Primitive("ellipsoid", (0.0, r + h - 0.1, -0.05 * length), (0.45 * w, 0.5 * h, 0.3 * length), 1, paint)]
    rubber = tex(("noise",), (0.05, 0.2))
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(Primitive("cylinder", (sx * 0.5 * w - (0.2 if sx > 0 else 0.0), r, sz * 0.32 * length),
                                   (r, 0.2, r), 0, rubber))
    return parts


def _rack(rng, tex, length: float, height: float, depth: float, small):
    """Shelving along z: uprights, boards, and on every board a row of `small` things."""
    metal = tex(("gradient", "natural", "noise"), (0.3, 1.0))
    board_tex = tex(("wood", "planks", "natural", "gradient"), (0.2, 0.6))
    parts = [_box(0.0, 0.5 * height, z, 0.5 * depth, 0.5 * height, 0.025, metal) for z in (0.0, length)]
    n = int(rng.integers(3, 6))
    gap = height / n
    for k in range(n):
        y = k * gap + 0.1
        parts.append(_box(0.0, y, 0.5 * length, 0.5 * depth, 0.015, 0.5 * length, board_tex))
        z = 0.05
        while z < length - 0.1:
            thing = small(rng, tex, min(gap - 0.06, 0.9))
            lo, hi = _bounds(thing)
            span = hi[2] - lo[2]
            if z + span > length - 0.03:
                break
            if rng.random() < 0.8:
                parts += _place(thing, rng, (-0.5 * depth + 0.02, 0.5 * depth - 0.02, z, z + span), lift=y + 0.015)
            z += span + 0.02 + 0.15 * rng.random()
    return parts


def _small(rng, tex, max_h: float):
    """Something that stands on a desk or a shelf: books, a mug, a bottle, a bowl, a box, a jar."""
    what = rng.choice(["books", "mug", "bottle", "bowl", "box", "jar"], p=[0.3, 0.15, 0.15, 0.1, 0.2, 0.1])
    h = min(max_h, 0.08 + 0.25 * rng.random())
    if what == "books":
        parts, z = [], 0.0
        for _ in range(int(rng.integers(2, 9))):
            t, bh = 0.015 + 0.04 * rng.random(), h * (0.7 + 0.3 * rng.random())
            bd = 0.12 + 0.1 * rng.random()
            parts.append(_box(0.0, 0.5 * bh, z + 0.5 * t, 0.5 * bd, 0.5 * bh, 0.5 * t,
                              tex(("gradient", "natural", "cloth", "stripes"), (0.05, 0.2))))
            z += t + 0.002
        return parts
    if what == "mug":
        r = 0.035 + 0.02 * rng.random()
        return [_cyl(0.0, 0.0, 0.0, r, min(h, 0.12), r, tex(("gradient", "natural", "dots", "stripes"), (0.03, 0.1)))]
    if what == "bottle":
        r = 0.03 + 0.03 * rng.random()
        glass = tex(("gradient", "natural"), (0.05, 0.2))
        return [_cyl(0.0, 0.0, 0.0, r, 0.6 * h, r, glass), _cyl(0.0, 0.6 * h, 0.0, r, 0.25 * h, 0.3 * r, glass),
                _cyl(0.0, 0.85 * h, 0.0, 0.3 * r, 0.15 * h, 0.3 * r, glass)]
    if what == "bowl":
        r = 0.06 + 0.08 * rng.random()
        return [Primitive("ellipsoid", (0.0, 0.0, 0.0), (r, min(h, 0.6 * r), r), 1, tex(("natural", "gradient"), (0.05, 0.2)))]
    if what == "jar":
        r = 0.04 + 0.04 * rng.random()
        return [_cyl(0.0, 0.0, 0.0, r, h, 0.9 * r, tex(("natural", "gradient", "stripes"), (0.05, 0.2)))]
    w, d = 0.08 + 0.25 * rng.random(), 0.08 + 0.2 * rng.random()
    return [_box(0.0, 0.5 * h, 0.0, 0.5 * w, 0.5 * h, 0.5 * d, tex(("natural", "gradient", "planks", "checks"), (0.05, 0.3)))]


def _monitor(rng, tex):
    w, h = 0.35 + 0.3 * rng.random(), 0.25 + 0.15 * rng.random()
    dark = tex(("gradient", "natural"), (0.1, 0.4))
    return [_box(0.0, 0.01, 0.0, 0.1, 0.01, 0.08, dark), _box(0.0, 0.1, 0.0, 0.02, 0.1, 0.02, dark),
            _box(0.0, 0.2 + 0.5 * h, 0.0, 0.5 * w, 0.5 * h, 0.015, dark)]


def _object(rng, ood: bool):
    """An unlabelled instance of a training object family (the foreground builders'), and the family.

    Held-out object families never appear as clutter: they stay unseen until the ood split."""
    family = TRAIN_FAMILIES[int(rng.integers(len(TRAIN_FAMILIES)))]
    return _BUILDERS[family](rng, ood), family


# --- furnishing a room -----------------------------------------------------------------------


def furnish(rng, family: str, room: Room, tex, ood: bool) -> tuple[list[Primitive], list[str]]:
    """Free-standing clutter of an interior of `family`: primitives, and the object families of
    the unlabelled object instances among them. `tex(kinds, scale)` draws a texture (held-out
    kinds in ood scenes)."""
    prims: list[Primitive] = []
    objects: list[str] = []
    x_lo, x_hi = room.walk_x
    left_strip = (room.left + 0.02, x_lo)
    right_strip = (x_hi, room.right - 0.02)
    back_zone = (room.left + 0.02, room.right - 0.02, room.walk_z + 0.05, room.back - 0.02)

    def side_region(z0, z1):
        x0, x1 = left_strip if rng.random() < 0.5 else right_strip
        return (x0, x1, z0, z1)

    def thing(kinds):
        what = kinds[int(rng.integers(len(kinds)))]
        if what == "object":
            parts, fam = _object(rng, ood)
            objects.append(fam)
            return parts
        return {"cabinet": _cabinet, "boxes": _boxes, "barrel": _barrel, "sofa": _sofa}[what](rng, tex)

    if family == "tabletop":
        k = 1.0
        for _ in range(int(rng.integers(3, 9))):  # miniatures and desk things along the wall and the sides
            if rng.random() < 0.35:
                parts, fam = _object(rng, ood)
                objects.append(fam)
                k = 0.06 + 0.14 * rng.random()
            else:
                parts = _monitor(rng, tex) if rng.random() < 0.12 else _small(rng, tex, 0.35)
                k = 1.0
            region = back_zone if rng.random() < 0.5 else side_region(0.15, room.back - 0.02)
            prims += _place(parts, rng, region, scale=k, quarter=int(rng.integers(4)))
        return prims, objects
    if family == "shelf":  # a shelving unit across the back wall, loaded with small things
        depth = room.back - room.walk_z - 0.1
        length = (room.right - room.left) * (0.7 + 0.3 * rng.random())
        height = min(room.ceiling - 0.1, 1.6 + 0.8 * rng.random())
        unit = _rack(rng, tex, length, height, depth, _small)
        prims += _place(unit, rng, (room.left + 0.01, room.right - 0.01, room.walk_z + 0.05, room.back - 0.01), quarter=1)
        for _ in range(int(rng.integers(0, 3))):
            prims += _place(thing(("boxes", "object", "barrel")), rng, side_region(0.3, room.walk_z), quarter=int(rng.integers(4)))
        return prims, objects
    if family == "workshop":
        for strip in (left_strip, right_strip):  # racks of boxes along both side walls
            if rng.random() < 0.8:
                depth = min(0.6, strip[1] - strip[0])
                length = room.back * (0.3 + 0.5 * rng.random())
                rack = _rack(rng, tex, length, min(room.ceiling - 0.2, 1.8 + 0.6 * rng.random()), depth, _small)
                z0 = 0.5 + (room.back - length - 0.6) * rng.random()
                x0 = strip[0] if strip is left_strip else strip[1] - depth
                prims += _place(rack, rng, (x0, x0 + depth, z0, z0 + length))
        prims += _place(_vehicle(rng, tex), rng, side_region(1.0, room.back - 0.1), quarter=int(2 * rng.integers(2)))
        prims += _place(_workbench(rng, tex), rng, back_zone)
        for _ in range(int(rng.integers(2, 6))):
            prims += _place(thing(("barrel", "boxes", "object", "cabinet")), rng,
                            back_zone if rng.random() < 0.4 else side_region(0.3, room.back - 0.1),
                            quarter=int(rng.integers(4)))
        return prims, objects
    # closeup and clutter: furniture, boxes and object instances beside the walkable floor
    n = int(rng.integers(2, 5)) if family == "closeup" else int(rng.integers(6, 14))
    kinds = ("cabinet", "boxes", "barrel", "object", "object") + (("sofa",) if family == "clutter" else ())
    for _ in range(n):
        region = back_zone if rng.random() < 0.35 else side_region(0.3, room.back - 0.05)
        prims += _place(thing(kinds), rng, region, quarter=int(rng.integers(4)))
    return prims, objects
