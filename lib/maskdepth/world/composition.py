"""Object-in-scene composition with exact labels, on the fly.

A manifest row becomes a sample: the object is ray-traced into the view of (bg, placement), standing
on the ground under its foot point; where it is nearer than the background it is visible (mask 1,
its depth), elsewhere the background's depth, so clutter in front of it occludes it exactly. A
contact shadow changes colours only, never labels; `bg` is the view without object or shadow.
Rendered objects are kept in an LRU cache; the full stage reads them from a store on disk
(`objects`), byte-identically. The steps in full: docs/world.md, "Composition"."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

import numpy as np

from maskdepth.world.camera import Camera, camera_at
from maskdepth.world.foregrounds import render_object
from maskdepth.world.sources import Sources, SourceSpec, load_sources, render_one_view, view_cameras
from maskdepth.world.textures import hash_uniform

OBJECT_CACHE_BYTES = 512 * 2**20
YAW_HALF_TAN_MAX = 1.5  # object yaw about +-113 degrees
SHADOW_STRENGTH = (0.25, 0.6)
SHADOW_STEPS = 65535


def object_pose(seed: int, bg, fg, placement):
    """(sin, cos) of each row's object yaw: counter-based, the same in every stage."""
    q = YAW_HALF_TAN_MAX * (2.0 * hash_uniform(int(seed), 5, bg, fg, placement) - 1.0)
    den = 1.0 + q * q
    return 2.0 * q / den, (1.0 - q * q) / den


class Composer:
    """Composes rows of a manifest (given as column arrays) at the sources' working size."""

    def __init__(self, sources: Sources, bg, fg, placement, u, v, scale, flip, store=None):
        self.sources = sources
        self.store = store  # an `objects.ObjectStore` of these rows' stage, or None (trace on the fly)
        self.size = sources.size
        spec = sources.spec
        self.bg = np.asarray(bg, dtype=np.int64)
        self.fg = np.asarray(fg, dtype=np.int64)
        self.placement = np.asarray(placement, dtype=np.int64)
        self.u = np.asarray(u, dtype=np.float64)
        self.v = np.asarray(v, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.flip = np.asarray(flip, dtype=bool)
        self.cameras = view_cameras(spec, self.bg, self.placement)
        self.sin_yaw, self.cos_yaw = object_pose(spec.seed, self.bg, self.fg, self.placement)
        self.shadow = SHADOW_STRENGTH[0] + (SHADOW_STRENGTH[1] - SHADOW_STRENGTH[0]) * hash_uniform(
            spec.seed, 6, self.bg, self.fg, self.placement)
        pairs, self._view_slot = np.unique(np.stack([self.bg, self.placement], axis=1), axis=0, return_inverse=True)
        self._view_slot = self._view_slot.reshape(-1)
        views = sources.views(pairs[:, 0], pairs[:, 1])
        self._view_rgb = np.ascontiguousarray(views["rgb"].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        self._view_depth = views["depth"]
        self._view_ground = views["ground"]
        self._objects: OrderedDict = OrderedDict()
        self._object_bytes = 0

    def __len__(self) -> int:
        return len(self.bg)

    def camera(self, i: int) -> Camera:
        return camera_at(self.cameras, i, float(self.cameras["x"][i]))

    def foot(self, i: int) -> tuple[float, float]:
        """World (x, z) of row i's foot point: the ground under pixel (u, v)."""
        x, z, _ = self.camera(i).ground_point(self.u[i], self.v[i])
        return float(x), float(z)

    def light(self, i: int) -> np.ndarray:
        from maskdepth.world.backgrounds import view_light

        return view_light(self.sources.backgrounds[self.bg[i]], self.sources.spec.seed, int(self.placement[i]))

    def object_layer(self, i: int) -> tuple[dict | None, tuple | None]:
        """Row i's rendered object (see `render_object`) and contact shadow (window, factor [h, w]),
        cached per (bg, fg, placement, pose): a row and its flip share them."""
        if self.store is not None:
            row = self.store.find(int(self.bg[i]), int(self.fg[i]), int(self.placement[i]))
            if row >= 0:
                return self.store.get(row)
        key = (int(self.bg[i]), int(self.fg[i]), int(self.placement[i]), self.u[i], self.v[i], self.scale[i])
        if key in self._objects:
            self._objects.move_to_end(key)
            return self._objects[key]
        cam, light = self.camera(i), self.light(i)
        x, z, _ = cam.ground_point(self.u[i], self.v[i])
        pose = (float(x), float(z), float(self.sin_yaw[i]), float(self.cos_yaw[i]), float(self.scale[i]))
        layer = render_object(self.sources.foregrounds[self.fg[i]], cam, pose, self.size, light)
        slot = self._view_slot[i]
        shadow = self._shadow(i, cam, pose[:2], light, self._view_ground[slot], self._view_depth[slot])
        entry = (layer, shadow)
        nbytes = _nbytes(entry)
        self._objects[key] = entry
        self._object_bytes += nbytes
        while self._object_bytes > OBJECT_CACHE_BYTES and len(self._objects) > 1:
            _, old = self._objects.popitem(last=False)
            self._object_bytes -= _nbytes(old)
        return entry

    def _shadow(self, i: int, cam: Camera, foot, light, ground: np.ndarray, depth: np.ndarray) -> tuple | None:
        """A soft disc of darkening on the ground around the foot, shifted away from the light:
        (window, factor float32 [h, w]) or None where it falls outside the image."""
        S = self.size
        fg = self.sources.foregrounds[self.fg[i]]
        scale = self.scale[i]
        x, z = foot
        lx, ly, lz = light
        reach = 0.25 * fg.height_m * scale / max(ly, 0.2)
        cx, cz = x - lx * reach, z - lz * reach
        radius = 0.55 * fg.width_m * scale + 0.1
        corners_x = np.array([cx - radius, cx + radius, cx - radius, cx + radius])
        corners_z = np.array([cz - radius, cz - radius, cz + radius, cz + radius])
        # pixels outside the projected square are outside the disc: darkened by nothing
        y0, y1, x0, x1 = cam.pixel_window(corners_x, np.zeros(4), corners_z, S)
        if x0 >= x1 or y0 >= y1:
            return None
        uc = (np.arange(x0, x1) + 0.5) / S
        vc = (np.arange(y0, y1) + 0.5) / S
        dx, _, dz = cam.rays(uc[None, :], vc[:, None])
        t = depth[y0:y1, x0:x1]
        gx, gz = cam.x + t * dx - cx, t * dz - cz
        r2 = (gx * gx + gz * gz) / (radius * radius)
        w = np.clip(1.0 - r2, 0.0, 1.0)
        dark = 1.0 - self.shadow[i] * w * w * ground[y0:y1, x0:x1]
        # in steps of 1/SHADOW_STEPS, so that `objects` stores it exactly in 16 bits
        return (y0, y1, x0, x1), (np.floor(dark * SHADOW_STEPS + 0.5).astype(np.float32) / np.float32(SHADOW_STEPS))

    def compose(self, i: int) -> dict[str, np.ndarray]:
        """Sample i as numpy arrays: image/bg float32 [3,S,S] in [0,1], mask {0,1} and depth (m) [1,S,S]."""
        S = self.size
        slot = self._view_slot[i]
        bg = self._view_rgb[slot]
        image = bg.copy()
        depth = self._view_depth[slot].copy()
        mask = np.zeros((S, S), dtype=np.float32)
        layer, shadow = self.object_layer(i)
        if shadow is not None:
            (y0, y1, x0, x1), dark = shadow
            image[:, y0:y1, x0:x1] *= dark
        if layer is not None:
            y0, y1, x0, x1 = layer["window"]
            behind = depth[y0:y1, x0:x1]
            visible = layer["depth"] < behind
            # colour: the object's coverage where its centre ray is visible or it only grazes the
            # pixel in front of the background (its edge); hidden where clutter is in front of it
            front = visible | (~np.isfinite(layer["depth"]))
            a = layer["alpha"] * front
            image[:, y0:y1, x0:x1] = image[:, y0:y1, x0:x1] * (1.0 - a) + layer["rgb"] * front
            mask[y0:y1, x0:x1] = visible
            depth[y0:y1, x0:x1] = np.where(visible, layer["depth"], behind)
        if self.flip[i]:
            image, bg, mask, depth = image[:, :, ::-1], bg[:, :, ::-1], mask[:, ::-1], depth[:, ::-1]
        return {
            "image": np.ascontiguousarray(image),
            "bg": np.ascontiguousarray(bg) if self.flip[i] else bg.copy(),
            "mask": np.ascontiguousarray(mask)[None],
            "depth": np.ascontiguousarray(depth)[None],
        }


def _nbytes(entry) -> int:
    layer, shadow = entry
    n = 0 if layer is None else sum(a.nbytes for k, a in layer.items() if k != "window")
    return n + (0 if shadow is None else shadow[1].nbytes)


def render_sample(spec: SourceSpec, bg: int, fg: int, placement: int, size: int = 64, flip: bool = False,
                  cache_dir=None) -> dict[str, np.ndarray]:
    """One sample of (bg, fg, placement), placed by the manifest's rules (for tests and figures)."""
    from maskdepth.world.placement import QUANT, place

    u, v, scale = (q / QUANT for q in place(spec, np.array([bg]), np.array([fg]), np.array([placement])))
    sources = load_sources(spec, size, cache_dir)
    composer = Composer(sources, [bg], [fg], [placement], u, v, scale, [flip])
    return composer.compose(0)


def composition_rate(composer: Composer, n: int = 5000, warmup: int = 1000) -> float:
    """Samples per second of `composer.compose` on this core (after warming the object cache)."""
    count = len(composer)
    for i in range(min(warmup, count)):
        composer.compose(i)
    start = time.perf_counter()
    for k in range(n):
        composer.compose(k % count)
    return n / (time.perf_counter() - start)


def reference_digest(spec: SourceSpec, size: int = 64) -> str:
    """sha256 of a few reference renders (views of a training, an unseen and an ood scene, and
    objects of a training and an ood family): the same seed must give these bytes everywhere."""
    import tempfile

    h = hashlib.sha256()
    for bg, placement in ((0, 0), (1, 21), (spec.n_bg, 3), (spec.first_ood_bg, 0), (spec.first_ood_bg + 1, 5)):
        view = render_one_view(spec, bg, placement, size)
        for key in ("rgb", "depth", "ground"):
            h.update(np.ascontiguousarray(view[key]).tobytes())
    with tempfile.TemporaryDirectory() as fresh:  # rendered now, never read from a cache
        for bg, fg, placement in ((0, 0, 0), (2, 3, 1), (spec.first_ood_bg, spec.first_ood_fg, 0)):
            sample = render_sample(spec, bg, fg, placement, size, cache_dir=fresh)
            for key in ("image", "mask", "depth"):
                h.update(np.ascontiguousarray(sample[key]).tobytes())
    return h.hexdigest()
