"""Solid primitives and exact ray intersection: the geometry of objects and background clutter.

Objects and clutter are unions of boxes, ellipsoids and capped cylinders (frusta, cones),
intersected analytically with each ray. With ray directions scaled to unit z-depth (see `camera`)
the hit parameter t is the exact z-depth of the hit; only +, -, *, / and sqrt are used, so the same
inputs give the same bytes on any machine. Rays start outside every solid; a hit needs t > T_MIN.
The primitives' parameters: docs/world.md, "Shapes"."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

T_MIN = 1e-6
_AXES = {0: (1, 2), 1: (0, 2), 2: (0, 1)}  # the two radial axes of a cylinder along each axis


@dataclass(eq=False)
class Primitive:
    kind: str  # "box" | "ellipsoid" | "cylinder"
    centre: tuple[float, float, float]  # cylinder: centre of its base
    size: tuple[float, float, float]  # box: half sizes; ellipsoid: radii; cylinder: (r0, length, r1)
    axis: int = 1  # cylinder axis (0 x, 1 y, 2 z)
    texture: dict = field(default_factory=dict, repr=False)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned (lo, hi) corners of the primitive in its frame."""
        c = np.asarray(self.centre, dtype=np.float64)
        if self.kind in ("box", "ellipsoid"):
            s = np.asarray(self.size, dtype=np.float64)
            return c - s, c + s
        r = max(self.size[0], self.size[2])
        lo, hi = c - r, c + r
        lo[self.axis], hi[self.axis] = c[self.axis], c[self.axis] + self.size[1]
        return lo, hi


def _box(p: Primitive, o, d):
    t_near = np.full(np.broadcast(o[0], d[0]).shape, -np.inf)
    t_far = np.full(t_near.shape, np.inf)
    near_axis = np.zeros(t_near.shape, dtype=np.int8)
    for a in range(3):
        lo = p.centre[a] - p.size[a]
        hi = p.centre[a] + p.size[a]
        parallel = d[a] == 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - o[a]) / d[a]
            t2 = (hi - o[a]) / d[a]
        inside = (o[a] >= lo) & (o[a] <= hi)
        a_near = np.where(parallel, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
        a_far = np.where(parallel, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
        later = a_near > t_near
        near_axis = np.where(later, a, near_axis)
        t_near = np.where(later, a_near, t_near)
        t_far = np.minimum(t_far, a_far)
    hit = (t_near <= t_far) & (t_near > T_MIN)
    t = np.where(hit, t_near, np.inf)
    normal = []
    for a in range(3):
        sign = np.where(d[a] > 0.0, -1.0, 1.0)
        normal.append(np.where(near_axis == a, sign, 0.0))
    return t, normal


def _ellipsoid(p: Primitive, o, d):
    r = p.size
    oo = [(o[a] - p.centre[a]) / r[a] for a in range(3)]
    dd = [d[a] / r[a] for a in range(3)]
    qa = dd[0] * dd[0] + dd[1] * dd[1] + dd[2] * dd[2]
    qb = oo[0] * dd[0] + oo[1] * dd[1] + oo[2] * dd[2]
    qc = oo[0] * oo[0] + oo[1] * oo[1] + oo[2] * oo[2] - 1.0
    disc = qb * qb - qa * qc
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-qb - np.sqrt(np.maximum(disc, 0.0))) / qa
    hit = (disc >= 0.0) & (t > T_MIN)
    t = np.where(hit, t, np.inf)
    tt = np.where(hit, t, 0.0)
    normal = [(oo[a] + tt * dd[a]) / r[a] for a in range(3)]
    return t, normal


def _cylinder(p: Primitive, o, d):
    ax = p.axis
    b, c = _AXES[ax]
    r0, length, r1 = p.size
    y0 = p.centre[ax]
    k = (r1 - r0) / length
    ob, oc = o[b] - p.centre[b], o[c] - p.centre[c]
    oy, dy, db, dc = o[ax], d[ax], d[b], d[c]
    A = r0 + k * (oy - y0)
    B = k * dy
    qa = db * db + dc * dc - B * B
    qb = ob * db + oc * dc - A * B
    qc = ob * ob + oc * oc - A * A
    disc = qb * qb - qa * qc
    root = np.sqrt(np.maximum(disc, 0.0))
    best = np.full(np.broadcast(ob, db).shape, np.inf)
    side = np.zeros(best.shape, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for sign in (-1.0, 1.0):
            t = (-qb + sign * root) / qa
            y = oy + t * dy
            ok = (disc >= 0.0) & (qa != 0.0) & (t > T_MIN) & (y >= y0) & (y <= y0 + length) & (A + B * t >= 0.0)
            better = ok & (t < best)
            best = np.where(better, t, best)
            side = side | better
        caps = [(y0, r0, -1.0)] + ([(y0 + length, r1, 1.0)] if r1 > 0.0 else [])
        cap_sign = np.zeros(best.shape)
        for y_cap, radius, sign in caps:
            t = (y_cap - oy) / dy
            pb, pc = ob + t * db, oc + t * dc
            ok = (dy != 0.0) & (t > T_MIN) & (pb * pb + pc * pc <= radius * radius)
            better = ok & (t < best)
            best = np.where(better, t, best)
            side = side & ~better
            cap_sign = np.where(better, sign, cap_sign)
    tt = np.where(np.isfinite(best), best, 0.0)
    pb, pc = ob + tt * db, oc + tt * dc
    radius = A + B * tt
    normal = [None, None, None]
    normal[b] = np.where(side, pb, 0.0)
    normal[c] = np.where(side, pc, 0.0)
    normal[ax] = np.where(side, -radius * k, cap_sign)
    return best, normal


_INTERSECT = {"box": _box, "ellipsoid": _ellipsoid, "cylinder": _cylinder}


def intersect(prims: list[Primitive], o, d, windows=None) -> dict:
    """Nearest hit of rays (origin o, direction d: 3-tuples of broadcastable arrays) with `prims`.

    Returns {"t": z-depth (inf for a miss), "index": primitive index (-1 for a miss),
    "normal": unit normal (3 arrays), "point": hit point (3 arrays)}, all in the frame of o, d.
    `windows` (2-D rays only): per primitive, the (y0, y1, x0, x1) block of rays that can hit it
    (e.g. `Camera.pixel_window` of its bounds); the others are not traced against it. Every ray's
    arithmetic is the same, so a conservative window gives the same bytes, in far less time
    when many small primitives each cover a few pixels.
    """
    shape = np.broadcast(*o, *d).shape
    best = np.full(shape, np.inf)
    index = np.full(shape, -1, dtype=np.int32)
    normal = [np.zeros(shape) for _ in range(3)]
    if windows is not None:
        o = [np.broadcast_to(a, shape) for a in o]
        d = [np.broadcast_to(a, shape) for a in d]
    for i, prim in enumerate(prims):
        if windows is None:
            t, n = _INTERSECT[prim.kind](prim, o, d)
            better = t < best
            if not better.any():
                continue
            best = np.where(better, t, best)
            index = np.where(better, i, index)
            normal = [np.where(better, n[a], normal[a]) for a in range(3)]
            continue
        y0, y1, x0, x1 = windows[i]
        if y0 >= y1 or x0 >= x1:
            continue
        block = (slice(y0, y1), slice(x0, x1))
        t, n = _INTERSECT[prim.kind](prim, [a[block] for a in o], [a[block] for a in d])
        sub = best[block]
        better = t < sub
        if not better.any():
            continue
        best[block] = np.where(better, t, sub)
        index[block] = np.where(better, i, index[block])
        for a in range(3):
            normal[a][block] = np.where(better, n[a], normal[a][block])
    norm = np.sqrt(normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2])
    norm = np.where(norm > 0.0, norm, 1.0)
    tt = np.where(np.isfinite(best), best, 0.0)
    return {
        "t": best,
        "index": index,
        "normal": [n / norm for n in normal],
        "point": [o[a] + tt * d[a] for a in range(3)],
    }


def surface_coords(point, normal):
    """Texture coordinates (s, t) in metres on a surface, by its dominant normal axis."""
    ax, ay, az = (np.abs(n) for n in normal)
    x, y, z = point
    top = (ay >= ax) & (ay >= az)
    side = ~top & (ax >= az)
    s = np.where(top, x, np.where(side, z, x))
    t = np.where(top, z, y)
    return s, t
