"""Procedural scenes (backgrounds), ray-traced per view so that their depth is exact.

A background is a scene of one family (rooms, corridors, halls, streets, open ground, courtyards,
terraces; the close-range ones are `interiors`) made of planes and clutter that is background, so
an object-like thing in the picture is not automatically foreground. A view is the scene seen by
one camera: the ray through each pixel centre gives its z-depth, 2 x 2 rays per pixel its colour,
textured and lit per view. Families in OOD_FAMILIES occur only in the `ood` split.
Details: docs/world.md, "Scenes"; the families: data_manifests/README.md."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.world import interiors, textures
from maskdepth.world.camera import Camera
from maskdepth.world.shading import SUPERSAMPLE, box_mean, lambert, pixel_centres
from maskdepth.world.shapes import Primitive, intersect, surface_coords
from maskdepth.world.textures import hash_uniform

FAMILIES = ("room", "corridor", "hall", "street", "open", "courtyard", "terrace") + interiors.FAMILIES
OOD_FAMILIES = ("terrace", "shelf", "workshop")
TRAIN_FAMILIES = tuple(f for f in FAMILIES if f not in OOD_FAMILIES)
INDOOR = ("room", "corridor", "hall")
# Relative frequency of each training family: the close-range interiors are what most photos show.
FAMILY_WEIGHTS = {"closeup": 1.5, "tabletop": 1.5, "clutter": 1.5}
FAR = 1e9  # "no wall on this side"


@dataclass(frozen=True)
class Background:
    """A scene: its family, planes, clutter, textures and lighting; cheap to draw from the seed.

    Objects may stand on the floor inside x in [walk_x[0], walk_x[1]], forward distance
    z < walk_z (world metres); cameras stand at x in [cam_x[0], cam_x[1]], z = 0.
    """

    id: int
    family: str
    walk_x: tuple[float, float]
    walk_z: float
    cam_x: tuple[float, float]
    scene: dict = field(repr=False, compare=False, hash=False)
    object_scale: tuple[float, float] = (1.0, 1.0)  # size factor range of the labelled object
    cam_height: tuple[float, float] | None = None  # camera height range (None: camera.HEIGHT_MIN..TRAIN_HEIGHT_MAX)

    @property
    def kind(self) -> str:
        return "indoor" if self.scene["indoor"] else "outdoor"


# --- drawing a scene ------------------------------------------------------------------------


def _tex(rng, kinds, scale, ood):
    """A texture from `kinds`; an ood scene may draw the held-out kinds too, and often does."""
    if ood and rng.random() < 0.6:
        kinds = textures.OOD_KINDS
    else:
        kinds = tuple(k for k in kinds if k not in textures.OOD_KINDS) or textures.TRAIN_KINDS
    return textures.random_texture(rng, kinds, scale)


def _wall_clutter(rng, wall: str, span: tuple[float, float], at: float, height: float, ood: bool, sky=False):
    """Doors, windows, frames, panels, shelves, skirting, blocks along one wall.

    `wall` is "back" (plane z = at, running along x), "left" (x = at, along z) or "right".
    """
    prims = []
    lo, hi = span
    length = hi - lo
    inward = {"back": -1.0, "left": 1.0, "right": -1.0}[wall]

    def add(kind, along, width, y0, h, depth, tex, cyl=False):
        """A box (or a cylinder) against the wall, centred at `along`, protruding `depth`."""
        if cyl:
            r = 0.5 * width
            pos = at + inward * r
            centre = (along, y0, pos) if wall == "back" else (pos, y0, along)
            prims.append(Primitive("cylinder", centre, (r, h, r), 1, tex))
            return
        c_w = at + inward * 0.5 * depth
        centre = (along, y0 + 0.5 * h, c_w) if wall == "back" else (c_w, y0 + 0.5 * h, along)
        size = (0.5 * width, 0.5 * h, 0.5 * depth) if wall == "back" else (0.5 * depth, 0.5 * h, 0.5 * width)
        prims.append(Primitive("box", centre, size, 1, tex))

    if not sky and rng.random() < 0.6:  # skirting along the whole wall
        add("skirting", 0.5 * (lo + hi), length, 0.0, 0.06 + 0.08 * rng.random(), 0.02 + 0.02 * rng.random(),
            _tex(rng, ("gradient", "noise", "planks"), (0.5, 2.0), ood))
    n = int(rng.integers(1, 5))
    for _ in range(n):
        what = rng.choice(["door", "window", "frame", "panel", "shelf", "block", "pillar"],
                          p=[0.2, 0.22, 0.14, 0.1, 0.14, 0.12, 0.08])
        along = lo + length * rng.random()
        if what == "door":
            w, h = 0.8 + 0.4 * rng.random(), min(height - 0.05, 1.9 + 0.4 * rng.random())
            add(what, along, w, 0.0, h, 0.03 + 0.04 * rng.random(), _tex(rng, ("planks", "gradient", "noise"), (0.1, 0.5), ood))
        elif what == "window":
            w, h = 0.6 + 1.4 * rng.random(), 0.6 + 1.2 * rng.random()
            y0 = min(0.6 + 0.8 * rng.random(), max(0.1, height - h - 0.1))
            glass = {"kind": "gradient", "c1": np.array([0.55, 0.7, 0.85]) * (0.6 + 0.4 * rng.random()),
                     "c2": np.array([0.85, 0.9, 0.95]), "scale": 0.4, "axis": 0, "key": 0, "grain": 0.02}
            add(what, along, w + 0.12, y0 - 0.06, h + 0.12, 0.04, _tex(rng, ("gradient", "noise"), (0.3, 1.0), ood))
            add(what, along, w, y0, h, 0.06, glass)
        elif what == "frame":
            w, h = 0.3 + 0.9 * rng.random(), 0.3 + 0.8 * rng.random()
            add(what, along, w, min(1.0 + 0.8 * rng.random(), max(0.1, height - h - 0.1)), h, 0.03,
                _tex(rng, textures.TRAIN_KINDS, (0.05, 0.4), ood))
        elif what == "panel":
            w, h = 1.0 + 2.0 * rng.random(), 0.5 + 0.8 * rng.random()
            add(what, along, w, 0.0, h, 0.015, _tex(rng, ("planks", "tiles", "stripes", "fabric"), (0.1, 0.5), ood))
        elif what == "shelf":
            w, h = 0.6 + 1.4 * rng.random(), min(height - 0.1, 0.8 + 1.4 * rng.random())
            add(what, along, w, 0.0, h, 0.3 + 0.2 * rng.random(), _tex(rng, ("planks", "noise", "gradient"), (0.1, 0.5), ood))
        elif what == "block":
            w, h = 0.6 + 1.2 * rng.random(), 0.4 + 0.6 * rng.random()
            add(what, along, w, 0.0, h, 0.4 + 0.4 * rng.random(), _tex(rng, textures.TRAIN_KINDS, (0.1, 0.6), ood))
        else:
            w = 0.25 + 0.35 * rng.random()
            h = height if not sky else 2.5 + 3.0 * rng.random()
            add(what, along, w, 0.0, h, w, _tex(rng, ("noise", "gradient", "bricks", "tiles"), (0.2, 1.0), ood),
                cyl=rng.random() < 0.5)
    return prims


def _far_clutter(rng, n: int, z_range, x_half: float, ood: bool):
    """Trees, rocks, poles and bollards far from where objects stand (outdoor background)."""
    prims = []
    for _ in range(n):
        x = (2.0 * rng.random() - 1.0) * x_half
        z = z_range[0] + (z_range[1] - z_range[0]) * rng.random()
        what = rng.choice(["tree", "rock", "pole", "bollard"], p=[0.4, 0.25, 0.2, 0.15])
        if what == "tree":
            trunk_h, r = 1.5 + 2.5 * rng.random(), 0.1 + 0.15 * rng.random()
            prims.append(Primitive("cylinder", (x, 0.0, z), (r, trunk_h, r * 0.8), 1,
                                   _tex(rng, ("noise", "planks"), (0.1, 0.4), ood)))
            cr = 0.8 + 1.5 * rng.random()
            leaves = textures.random_texture(rng, ("noise",), (0.1, 0.4), colour=[0.1, 0.3 + 0.3 * rng.random(), 0.08])
            prims.append(Primitive("ellipsoid", (x, trunk_h + 0.7 * cr, z), (cr, 0.8 * cr + 0.6 * cr * rng.random(), cr),
                                   1, leaves))
        elif what == "rock":
            r = 0.3 + 1.2 * rng.random()
            prims.append(Primitive("ellipsoid", (x, 0.2 * r, z), (r, 0.6 * r, 0.8 * r), 1,
                                   _tex(rng, ("noise", "marble"), (0.2, 1.0), ood)))
        elif what == "pole":
            h, r = 3.0 + 4.0 * rng.random(), 0.06 + 0.08 * rng.random()
            prims.append(Primitive("cylinder", (x, 0.0, z), (r, h, r), 1, _tex(rng, ("gradient", "noise"), (0.5, 2.0), ood)))
        else:
            h, r = 0.6 + 0.5 * rng.random(), 0.08 + 0.1 * rng.random()
            prims.append(Primitive("cylinder", (x, 0.0, z), (r, h, r), 1, _tex(rng, ("stripes", "gradient"), (0.1, 0.3), ood)))
    return prims


def _facade_rows(rng, first_z: float, ood: bool):
    rows = []
    distance = first_z
    for row in range(int(rng.integers(1, 4))):
        widths = 4.0 + 10.0 * rng.random(80)
        edges = np.concatenate([[-260.0], -260.0 + np.cumsum(widths)])
        heights = 3.0 + (10.0 + 10.0 * row) * rng.random(80)
        if row > 0:  # gaps in far rows let the sky or farther rows show through
            heights = np.where(rng.random(80) < 0.2, 0.0, heights)
        rows.append({"z": distance, "edges": edges, "heights": heights, "tints": 0.45 + 0.55 * rng.random((80, 3)),
                     "tex": _tex(rng, ("windows", "bricks", "stripes", "noise", "tiles"), (1.0, 3.0), ood)})
        distance += 10.0 + 25.0 * rng.random()
    return rows


def background_params(seed: int, bg_id: int, ood: bool = False) -> Background:
    """Draw background `bg_id` of the source set `seed` (no rendering).

    Training and unseen backgrounds come from TRAIN_FAMILIES with training textures; an
    ood background (`ood=True`) is of a held-out family for every other id, and otherwise
    a training family whose surfaces mostly use the held-out texture kinds.
    """
    rng = np.random.default_rng([int(seed), 1, int(bg_id)])
    if ood and bg_id % 2 == 0:  # every held-out family in turn
        family = OOD_FAMILIES[(int(bg_id) // 2) % len(OOD_FAMILIES)]
    else:
        weights = np.array([FAMILY_WEIGHTS.get(f, 1.0) for f in TRAIN_FAMILIES])
        cumulative = np.cumsum(weights) / weights.sum()
        family = TRAIN_FAMILIES[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(TRAIN_FAMILIES) - 1)]
    tex_ood = ood and family not in OOD_FAMILIES
    floor_kinds = ("checks", "noise", "stripes", "bricks", "planks", "tiles", "marble", "natural", "wood")
    wall_kinds = ("stripes", "noise", "gradient", "bricks", "checks", "planks", "tiles", "fabric", "dots", "marble",
                  "natural", "natural", "wood", "cloth")
    scene: dict = {"light": _light(rng), "clutter": [], "objects": []}
    if family in interiors.LAYOUTS:
        return _interior(rng, int(bg_id), family, scene, floor_kinds, wall_kinds, tex_ood)
    if family in INDOOR or family == "terrace" and rng.random() < 0.5:
        if family == "terrace":
            width, back = 4.0 + 8.0 * rng.random(), 9.0 + 8.0 * rng.random()
        elif family == "corridor":
            width, back = 1.6 + 1.4 * rng.random(), 10.0 + 20.0 * rng.random()
        elif family == "hall":
            width, back = 10.0 + 15.0 * rng.random(), 12.0 + 23.0 * rng.random()
        else:
            width, back = 3.0 + 6.0 * rng.random(), 4.0 + 8.0 * rng.random()
        ceiling = (4.0 + 4.0 * rng.random()) if family == "hall" else (2.4 + 1.2 * rng.random())
        left = width * (0.3 + 0.4 * rng.random())
        scene.update(indoor=True, left=-left, right=width - left, back=back, ceiling=ceiling,
                     floor_tex=_tex(rng, floor_kinds, (0.25, 1.2), tex_ood),
                     wall_tex=[_tex(rng, wall_kinds, (0.2, 1.5), tex_ood) for _ in range(4)],
                     ceiling_tex=_tex(rng, ("noise", "gradient", "tiles"), (0.5, 2.0), tex_ood),
                     light_range=3.0 + 10.0 * rng.random())
        for wall, span, at in (("back", (-left, width - left), back), ("left", (0.5, back), -left),
                               ("right", (0.5, back), width - left)):
            scene["clutter"] += _wall_clutter(rng, wall, span, at, ceiling, tex_ood)
        if family == "hall":  # rows of pillars along both sides
            n = int(rng.integers(2, 6))
            r = 0.2 + 0.3 * rng.random()
            tex = _tex(rng, ("noise", "gradient", "bricks", "tiles"), (0.3, 1.5), tex_ood)
            for k in range(n):
                z = back * (k + 0.5) / n
                for x in (-left + 1.0 + r, width - left - 1.0 - r):
                    prims = (Primitive("cylinder", (x, 0.0, z), (r, ceiling, r), 1, tex) if rng.random() < 0.5
                             else Primitive("box", (x, 0.5 * ceiling, z), (r, 0.5 * ceiling, r), 1, tex))
                    scene["clutter"].append(prims)
        margin = 1.0 + (1.4 if family == "hall" else 0.0)
        walk_x = (-left + margin, width - left - margin)
        if walk_x[0] > walk_x[1] - 0.2:  # narrow corridors: the middle strip
            walk_x = (-left + 0.3 * width, width - left - 0.3 * width)
        walk_z = back - 0.8
        cam_x = (-left + 0.4 * width, width - left - 0.4 * width)
    else:
        scene.update(indoor=False,
                     ground_tex=_tex(rng, floor_kinds, (0.4, 2.5), tex_ood),
                     sky_horizon=np.array([0.75, 0.82, 0.9]) * (0.7 + 0.3 * rng.random()),
                     sky_zenith=np.array([0.25, 0.45, 0.85]) * (0.5 + 0.5 * rng.random()),
                     haze=50.0 + 150.0 * rng.random(), rows=[], walls=None)
        if family == "street":
            first = 12.0 + 16.0 * rng.random()
            scene["rows"] = _facade_rows(rng, first, tex_ood)
            scene["clutter"] += _far_clutter(rng, int(rng.integers(2, 8)), (first - 3.0, first - 0.5), 25.0, tex_ood)
            walk_z = first - 4.0
        elif family == "courtyard":
            w, back = 8.0 + 12.0 * rng.random(), 10.0 + 15.0 * rng.random()
            left = w * (0.3 + 0.4 * rng.random())
            wall_h = 3.0 + 6.0 * rng.random()
            scene["walls"] = {"left": -left, "right": w - left, "back": back, "height": wall_h,
                              "tex": [_tex(rng, wall_kinds, (0.3, 2.0), tex_ood) for _ in range(3)]}
            for wall, span, at in (("back", (-left, w - left), back), ("left", (0.5, back), -left),
                                   ("right", (0.5, back), w - left)):
                scene["clutter"] += _wall_clutter(rng, wall, span, at, wall_h, tex_ood, sky=True)
            walk_z = back - 1.0
        elif family == "terrace":
            first = 10.0 + 15.0 * rng.random()
            if rng.random() < 0.5:
                scene["rows"] = _facade_rows(rng, first + 8.0, tex_ood)
            walk_z = first - 1.0
        else:  # open ground: far clutter only
            walk_z = 20.0 + 20.0 * rng.random()
            scene["clutter"] += _far_clutter(rng, int(rng.integers(3, 12)), (walk_z + 2.0, walk_z + 60.0), 60.0, tex_ood)
        if family == "courtyard":
            walk_x = (scene["walls"]["left"] + 1.0, scene["walls"]["right"] - 1.0)
            cam_x = (scene["walls"]["left"] + 1.5, scene["walls"]["right"] - 1.5)
        else:
            walk_x, cam_x = (-FAR, FAR), (-3.0, 3.0)
    if family == "terrace":  # steps up to a raised platform across the whole width
        walk_z = scene["back"] - 4.0 if scene["indoor"] else walk_z
        n_steps = int(rng.integers(1, 5))
        rise, run = 0.12 + 0.1 * rng.random(), 0.25 + 0.15 * rng.random()
        z0 = walk_z + 0.5
        tex = _tex(rng, ("tiles", "planks", "noise", "marble"), (0.2, 1.0), True)
        end = scene["back"] if scene["indoor"] else z0 + run * n_steps + 3.0 + 20.0 * rng.random()
        for k in range(n_steps):  # each step runs to the platform's far end
            top = rise * (k + 1)
            z = z0 + run * k
            scene["clutter"].append(Primitive("box", (0.0, 0.5 * top, 0.5 * (z + end)), (200.0, 0.5 * top, 0.5 * (end - z)),
                                              1, tex))
    return Background(int(bg_id), family, (float(walk_x[0]), float(walk_x[1])), float(walk_z),
                      (float(cam_x[0]), float(cam_x[1])), scene)


def _interior(rng, bg_id: int, family: str, scene: dict, floor_kinds, wall_kinds, tex_ood: bool) -> Background:
    """A close-range or cluttered interior (`interiors`): walls as a room's, its own clutter and scale."""
    lay = interiors.LAYOUTS[family]
    room = interiors.draw_room(rng, family)
    if family == "tabletop":  # the floor is a desk or table top
        floor_kinds = ("wood", "planks", "natural", "cloth", "tiles", "checks", "fabric", "marble")
    scene.update(indoor=True, left=room.left, right=room.right, back=room.back, ceiling=room.ceiling,
                 floor_tex=_tex(rng, floor_kinds, (0.25, 1.2), tex_ood),
                 wall_tex=[_tex(rng, wall_kinds, (0.2, 1.5), tex_ood) for _ in range(4)],
                 ceiling_tex=_tex(rng, ("noise", "gradient", "tiles", "natural"), (0.5, 2.0), tex_ood),
                 light_range=2.0 + 6.0 * rng.random())
    if lay.wall_clutter:
        for wall, span, at in (("back", (room.left, room.right), room.back), ("left", (0.5, room.back), room.left),
                               ("right", (0.5, room.back), room.right)):
            scene["clutter"] += _wall_clutter(rng, wall, span, at, room.ceiling, tex_ood)
    prims, objects = interiors.furnish(rng, family, room, lambda kinds, scale: _tex(rng, kinds, scale, tex_ood), tex_ood)
    scene["clutter"] += prims
    scene["objects"] += objects
    width = room.right - room.left
    cam_x = (room.left + 0.4 * width, room.right - 0.4 * width)
    return Background(bg_id, family, room.walk_x, room.walk_z, cam_x, scene, lay.object_scale, lay.cam_height)


def _light(rng) -> np.ndarray:
    """A unit light direction (towards the light), from above, any azimuth."""
    v = np.array([2.0 * rng.random() - 1.0, 0.6 + 1.0 * rng.random(), 2.0 * rng.random() - 1.5])
    return v / np.sqrt((v * v).sum())


# --- rendering --------------------------------------------------------------------------------


def view_light(bg: Background, seed: int, placement: int) -> np.ndarray:
    """The light of view (bg, placement): the scene's light turned by a per-view azimuth (unit vector)."""
    r = float(hash_uniform(int(seed), 11, bg.id, int(placement)))
    q = 0.8 * (2.0 * r - 1.0)
    s, c = 2.0 * q / (1.0 + q * q), (1.0 - q * q) / (1.0 + q * q)
    lx, ly, lz = bg.scene["light"]
    return np.array([lx * c + lz * s, ly, lz * c - lx * s])


def trace(bg: Background, cam: Camera, u, v, light) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (float64 [..., 3] in [0, 1]), unclipped z-depth and ground flag of the rays through (u, v)."""
    scene = bg.scene
    dx, dy, dz = cam.rays(u, v)
    ox, oy, oz = cam.origin
    shape = dx.shape
    t = np.full(shape, np.inf)
    surface = np.full(shape, -1, dtype=np.int16)  # -1 sky, 0 floor, 1.. planes, 100+ clutter
    rgb = np.zeros(shape + (3,))
    normal = [np.zeros(shape), np.zeros(shape), np.zeros(shape)]

    def plane(axis_d, offset, index, n, top=None):
        """Hit the plane `offset` away along one axis (only below height `top`, when given)."""
        nonlocal t, surface, normal
        with np.errstate(divide="ignore", invalid="ignore"):
            tp = np.where(axis_d * np.sign(offset) > 0.0, offset / axis_d, np.inf)
        hit = (tp > 0.0) & (tp < t)
        if top is not None:
            hit = hit & (oy + np.where(np.isfinite(tp), tp, 0.0) * dy <= top)
        t = np.where(hit, tp, t)
        surface = np.where(hit, index, surface)
        normal = [np.where(hit, n[a], normal[a]) for a in range(3)]

    plane(dy, -oy, 0, (0.0, 1.0, 0.0))
    planes = []
    if scene["indoor"]:
        ceiling = max(scene["ceiling"], cam.height + 0.3)
        planes = [(dy, ceiling - oy, 1, (0.0, -1.0, 0.0)), (dz, scene["back"] - oz, 2, (0.0, 0.0, -1.0)),
                  (dx, scene["left"] - ox, 3, (1.0, 0.0, 0.0)), (dx, scene["right"] - ox, 4, (-1.0, 0.0, 0.0)),
                  (dz, -1.5 - oz, 5, (0.0, 0.0, 1.0))]
    for p in planes:
        plane(*p)
    walls = scene.get("walls")
    if walls:  # courtyard walls up to a height, sky above
        for index, (axis, at, n) in enumerate(((2, walls["back"], (0.0, 0.0, -1.0)), (0, walls["left"], (1.0, 0.0, 0.0)),
                                                (0, walls["right"], (-1.0, 0.0, 0.0))), start=6):
            plane((dx, dy, dz)[axis], at - (ox, oy, oz)[axis], index, n, top=walls["height"])
    building = np.zeros(shape, dtype=np.int64)
    for k, row in enumerate(scene.get("rows", [])):
        with np.errstate(divide="ignore", invalid="ignore"):
            t_row = np.where(dz > 0.0, (row["z"] - oz) / dz, np.inf)
        tt = np.where(np.isfinite(t_row), t_row, 0.0)
        xr, yr = ox + tt * dx, oy + tt * dy
        idx = np.clip(np.searchsorted(row["edges"], xr) - 1, 0, len(row["heights"]) - 1)
        hit = np.isfinite(t_row) & (yr >= 0.0) & (yr <= row["heights"][idx]) & (t_row < t)
        t = np.where(hit, t_row, t)
        surface = np.where(hit, 20 + k, surface)
        building = np.where(hit, idx, building)
        normal = [np.where(hit, n, normal[a]) for a, n in enumerate((0.0, 0.0, -1.0))]
    clutter = scene["clutter"]
    if clutter:
        hit_c = intersect(clutter, (ox, oy, oz), (dx, dy, dz), windows=_windows(clutter, cam, shape))
        hit = hit_c["t"] < t
        t = np.where(hit, hit_c["t"], t)
        surface = np.where(hit, 100 + hit_c["index"], surface)
        normal = [np.where(hit, hit_c["normal"][a], normal[a]) for a in range(3)]
    tt = np.where(np.isfinite(t), t, 0.0)
    x, y, z = ox + tt * dx, oy + tt * dy, oz + tt * dz
    s_coord, t_coord = surface_coords((x, y, z), normal)
    for index in np.unique(surface):
        sel = surface == index
        if index < 0:
            continue
        if index == 0:
            tex = scene["floor_tex"] if scene["indoor"] else scene["ground_tex"]
        elif index == 1:
            tex = scene["ceiling_tex"]
        elif index < 6:
            tex = scene["wall_tex"][index - 2]
        elif index < 20:
            tex = walls["tex"][index - 6]
        elif index < 100:
            row = scene["rows"][index - 20]
            rgb[sel] = textures.shade(row["tex"], x[sel], y[sel]) * row["tints"][building[sel]]
            continue
        else:
            tex = clutter[index - 100].texture
        rgb[sel] = textures.shade(tex, s_coord[sel], t_coord[sel])
    rgb = rgb * lambert(normal, light)[..., None]
    if scene["indoor"]:
        # Light falls off with distance (rational, so it is exact on every machine).
        falloff = 1.0 / (1.0 + tt * tt / (scene["light_range"] * scene["light_range"]))
        rgb = rgb * (0.4 + 0.6 * falloff)[..., None]
    else:
        norm = np.sqrt(dx * dx + dy * dy + dz * dz)
        elevation = np.clip(3.0 * dy / norm, 0.0, 1.0)[..., None]
        sky = scene["sky_horizon"] * (1.0 - elevation) + scene["sky_zenith"] * elevation
        haze = np.where(np.isfinite(t), tt / (tt + scene["haze"]), 1.0)[..., None]
        rgb = np.where((surface < 0)[..., None], sky, rgb * (1.0 - haze) + scene["sky_horizon"] * haze)
    return np.clip(rgb, 0.0, 1.0), t, surface == 0


def _windows(prims, cam: Camera, shape) -> list[tuple[int, int, int, int]] | None:
    """Per primitive, the block of a square grid of rays (`pixel_centres`) that can hit it."""
    if len(shape) != 2 or shape[0] != shape[1]:
        return None
    out = []
    for prim in prims:
        lo, hi = prim.bounds()
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
        out.append(cam.pixel_window(corners[:, 0], corners[:, 1], corners[:, 2], shape[0]))
    return out


def render_view(bg: Background, cam: Camera, size: int, light) -> dict[str, np.ndarray]:
    """rgb uint8 [S,S,3], exact depth float32 [S,S] (metres, pixel centres), ground bool [S,S]."""
    c = pixel_centres(size)
    _, depth, ground = trace(bg, cam, c[None, :], c[:, None], light)
    sub = pixel_centres(size, step=SUPERSAMPLE)
    rgb, _, _ = trace(bg, cam, sub[None, :], sub[:, None], light)
    rgb8 = np.floor(box_mean(rgb) * 255.0 + 0.5).astype(np.uint8)
    depth = np.clip(np.where(np.isfinite(depth), depth, DEPTH_MAX), DEPTH_MIN, DEPTH_MAX).astype(np.float32)
    return {"rgb": rgb8, "depth": depth, "ground": ground}
