"""Procedural backgrounds rendered analytically, so that their depth is exact at any size.

A background is a pinhole camera (height above the ground, downward pitch, focal length)
in a scene made of planes: an indoor room (floor, ceiling, back and side walls) or an
outdoor street (ground, rows of building facades at several distances, sky). Each pixel's
depth is the ray-plane intersection through the pixel centre: *z-depth* (distance along the
optical axis) in metres, clipped to [DEPTH_MIN, DEPTH_MAX]; the sky and ground beyond
DEPTH_MAX read DEPTH_MAX. Colours are supersampled 2x2 per pixel (anti-aliasing).

Conventions: image coordinates u (right) and v (down) are normalised to [0, 1] over the
image width/height (images are square); the focal length `focal` is in image widths.
World: x right, y up, z forward on the ground; the camera sits at (0, height, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskdepth.data import textures
from maskdepth.depth import DEPTH_MAX, DEPTH_MIN

SUPERSAMPLE = 2


@dataclass(frozen=True)
class Camera:
    """Pinhole camera pitched down by an angle given by its sine and cosine.

    The angle comes from tan(pitch/2) through the rational half-angle formulas, so no
    platform-dependent trigonometry enters the depth maps.
    """

    height: float
    sin_pitch: float
    cos_pitch: float
    focal: float

    def rays(self, u, v):
        """World direction (dx, dy, dz) of the ray through (u, v), scaled so its camera z is 1."""
        xc = (np.asarray(u, dtype=np.float64) - 0.5) / self.focal
        yc = (np.asarray(v, dtype=np.float64) - 0.5) / self.focal  # image y points down
        dx = xc
        dy = -yc * self.cos_pitch - self.sin_pitch
        dz = self.cos_pitch - yc * self.sin_pitch
        return np.broadcast_arrays(dx, dy, dz)

    def ground_depth(self, v):
        """Exact z-depth (m) of the ground point seen at image row v (below the horizon)."""
        yc = (np.asarray(v, dtype=np.float64) - 0.5) / self.focal
        return self.height / (yc * self.cos_pitch + self.sin_pitch)

    def v_of_ground_depth(self, depth):
        """Inverse of `ground_depth`: the image row where the ground is `depth` metres away."""
        return 0.5 + self.focal * (self.height / np.asarray(depth, dtype=np.float64) - self.sin_pitch) / self.cos_pitch

    def ground_z_of_depth(self, depth):
        """World z (forward distance along the ground) of the ground point at z-depth `depth`."""
        return (np.asarray(depth, dtype=np.float64) - self.height * self.sin_pitch) / self.cos_pitch

    def depth_of_ground_z(self, z):
        return np.asarray(z, dtype=np.float64) * self.cos_pitch + self.height * self.sin_pitch

    def project(self, x, y, z):
        """World points -> (u, v, z-depth)."""
        x = np.asarray(x, dtype=np.float64)
        ry = np.asarray(y, dtype=np.float64) - self.height
        z = np.asarray(z, dtype=np.float64)
        depth = -ry * self.sin_pitch + z * self.cos_pitch
        y_down = -(ry * self.cos_pitch + z * self.sin_pitch)
        return 0.5 + self.focal * x / depth, 0.5 + self.focal * y_down / depth, depth


@dataclass(frozen=True)
class Background:
    """Everything needed to render one background; cheap to draw from the seed."""

    id: int
    kind: str  # "indoor" | "outdoor"
    camera: Camera
    # Where a foreground may stand on the visible floor (world metres): x in [x_min, x_max],
    # forward distance z < z_max (in front of the back wall / first facade row).
    x_min: float
    x_max: float
    z_max: float
    scene: dict = field(repr=False, compare=False, hash=False)


def background_params(seed: int, bg_id: int) -> Background:
    """Draw background `bg_id` of the source set `seed` (no rendering)."""
    rng = np.random.default_rng([int(seed), 1, int(bg_id)])
    kind = "indoor" if rng.random() < 0.5 else "outdoor"
    # Knee- to chest-height cameras, level or tilted slightly down, as in casual photos of a
    # person or an object: the near floor is in view and an object standing on it can fill much
    # of the frame (an object's largest on-screen height grows with its height / camera height).
    half_tan = 0.01 + 0.07 * rng.random()  # pitch 1.1 to 9.1 degrees
    camera = Camera(
        height=float((0.5 + 0.55 * rng.random()) if kind == "indoor" else (0.5 + 0.65 * rng.random())),
        sin_pitch=2.0 * half_tan / (1.0 + half_tan * half_tan),
        cos_pitch=(1.0 - half_tan * half_tan) / (1.0 + half_tan * half_tan),
        focal=float(0.62 + 0.45 * rng.random()),  # horizontal field of view ~50 to 78 degrees
    )
    if kind == "indoor":
        scene = {
            "left": 1.5 + 3.0 * rng.random(),
            "right": 1.5 + 3.0 * rng.random(),
            "back": 5.0 + 9.0 * rng.random(),
            "ceiling": max(camera.height + 0.6, 2.4 + 1.2 * rng.random()),
            "floor_tex": textures.random_texture(rng, ("checks", "noise", "stripes", "bricks"), (0.25, 1.0)),
            "wall_tex": [textures.random_texture(rng, ("stripes", "noise", "gradient", "bricks", "checks"))
                         for _ in range(3)],
            "ceiling_tex": textures.random_texture(rng, ("noise", "gradient"), (0.5, 2.0)),
            "light_range": 5.0 + 8.0 * rng.random(),
        }
        margin = 0.3
        x_min, x_max = -scene["left"] + margin, scene["right"] - margin
        z_max = scene["back"] - margin
    else:
        n_rows = int(rng.integers(1, 4))
        rows = []
        distance = 14.0 + 14.0 * rng.random()
        for row in range(n_rows):
            widths = 4.0 + 10.0 * rng.random(80)
            edges = np.concatenate([[-260.0], -260.0 + np.cumsum(widths)])
            heights = 3.0 + (10.0 + 10.0 * row) * rng.random(80)
            if row > 0:  # gaps in far rows let the sky or farther rows show through
                heights = np.where(rng.random(80) < 0.2, 0.0, heights)
            rows.append({
                "z": distance,
                "edges": edges,
                "heights": heights,
                "tints": 0.45 + 0.55 * rng.random((80, 3)),
                "tex": textures.random_texture(rng, ("windows", "bricks", "stripes", "noise"), (1.0, 3.0)),
            })
            distance += 10.0 + 25.0 * rng.random()
        scene = {
            "rows": rows,
            "ground_tex": textures.random_texture(rng, ("noise", "checks", "stripes", "bricks"), (0.4, 2.5)),
            "sky_horizon": np.array([0.75, 0.82, 0.9]) * (0.8 + 0.2 * rng.random()),
            "sky_zenith": np.array([0.25, 0.45, 0.85]) * (0.6 + 0.4 * rng.random()),
            "haze": 60.0 + 140.0 * rng.random(),
        }
        x_min, x_max = -np.inf, np.inf
        z_max = rows[0]["z"] - 1.0
    return Background(int(bg_id), kind, camera, float(x_min), float(x_max), float(z_max), scene)


def _nearest(t_best, t_new, valid):
    """Where the new surface is hit in front of the best so far: a boolean mask."""
    return valid & (t_new > 0.0) & (t_new < t_best)


def trace(bg: Background, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (float64 [..., 3] in [0, 1]) and unclipped z-depth of the rays through (u, v)."""
    cam = bg.camera
    dx, dy, dz = cam.rays(u, v)
    t = np.full(dx.shape, np.inf)
    rgb = np.zeros(dx.shape + (3,))
    scene = bg.scene
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(dy < 0.0, cam.height / -dy, np.inf)
        if bg.kind == "indoor":
            planes = [
                (t_ground, "floor"),
                (np.where(dy > 0.0, (scene["ceiling"] - cam.height) / dy, np.inf), "ceiling"),
                (np.where(dz > 0.0, scene["back"] / dz, np.inf), "back"),
                (np.where(dx < 0.0, scene["left"] / -dx, np.inf), "left"),
                (np.where(dx > 0.0, scene["right"] / dx, np.inf), "right"),
            ]
            surface = np.zeros(dx.shape, dtype=np.int8)
            for index, (t_plane, _name) in enumerate(planes):
                hit = _nearest(t, t_plane, True)
                t = np.where(hit, t_plane, t)
                surface = np.where(hit, index, surface)
            x, y, z = t * dx, cam.height + t * dy, t * dz
            coords = {
                0: (x, z, scene["floor_tex"], 1.0),
                1: (x, z, scene["ceiling_tex"], 0.9),
                2: (x, y, scene["wall_tex"][0], 0.85),
                3: (z, y, scene["wall_tex"][1], 0.7),
                4: (z, y, scene["wall_tex"][2], 0.75),
            }
            for index, (s_coord, t_coord, tex, light) in coords.items():
                sel = surface == index
                if sel.any():
                    rgb[sel] = textures.shade(tex, s_coord[sel], t_coord[sel]) * light
            # Light falls off with distance (rational, so it is exact on every machine).
            falloff = 1.0 / (1.0 + t * t / (scene["light_range"] * scene["light_range"]))
            rgb = rgb * (0.35 + 0.65 * falloff)[..., None]
        else:
            surface = np.full(dx.shape, -1, dtype=np.int16)  # -1 sky, 0 ground, 1+k facade row k
            hit = _nearest(t, t_ground, np.isfinite(t_ground))
            t = np.where(hit, t_ground, t)
            surface = np.where(hit, 0, surface)
            building = np.zeros(dx.shape, dtype=np.int64)
            for k, row in enumerate(scene["rows"]):
                t_row = np.where(dz > 0.0, row["z"] / dz, np.inf)
                xr = t_row * dx
                yr = cam.height + t_row * dy
                idx = np.clip(np.searchsorted(row["edges"], xr) - 1, 0, len(row["heights"]) - 1)
                inside = np.isfinite(t_row) & (yr >= 0.0) & (yr <= row["heights"][idx])
                hit = _nearest(t, t_row, inside)
                t = np.where(hit, t_row, t)
                surface = np.where(hit, 1 + k, surface)
                building = np.where(hit, idx, building)
            x, y, z = t * dx, cam.height + t * dy, t * dz
            sel = surface == 0
            if sel.any():
                rgb[sel] = textures.shade(scene["ground_tex"], x[sel], z[sel])
            for k, row in enumerate(scene["rows"]):
                sel = surface == 1 + k
                if sel.any():
                    rgb[sel] = textures.shade(row["tex"], x[sel], y[sel]) * row["tints"][building[sel]]
            # Sky: a gradient with elevation; aerial perspective hazes distant surfaces.
            norm = np.sqrt(dx * dx + dy * dy + dz * dz)
            elevation = np.clip(3.0 * dy / norm, 0.0, 1.0)[..., None]
            sky = scene["sky_horizon"] * (1.0 - elevation) + scene["sky_zenith"] * elevation
            haze = np.where(np.isfinite(t), t / (t + scene["haze"]), 1.0)[..., None]
            is_sky = (surface < 0)[..., None]
            rgb = np.where(is_sky, sky, rgb * (1.0 - haze) + scene["sky_horizon"] * haze)
    return np.clip(rgb, 0.0, 1.0), t


def pixel_centres(size: int, offset: float = 0.5, step: int = 1) -> np.ndarray:
    """Normalised coordinates of pixel centres (or of sub-pixel samples) along one axis."""
    return (np.arange(size * step, dtype=np.float64) + offset) / (size * step)


def render_background(bg: Background, size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [size, size, 3] and exact depth float32 [size, size] (metres, pixel centres)."""
    c = pixel_centres(size)
    _, depth = trace(bg, c[None, :], c[:, None])
    sub = pixel_centres(size, step=SUPERSAMPLE)
    rgb, _ = trace(bg, sub[None, :], sub[:, None])
    rgb = rgb.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3)
    acc = np.zeros((size, size, 3))
    for i in range(SUPERSAMPLE):  # explicit sums: a fixed order of additions on every machine
        for j in range(SUPERSAMPLE):
            acc = acc + rgb[:, i, :, j, :]
    rgb8 = np.floor(acc * (255.0 / SUPERSAMPLE**2) + 0.5).astype(np.uint8)
    depth = np.clip(np.where(np.isfinite(depth), depth, DEPTH_MAX), DEPTH_MIN, DEPTH_MAX).astype(np.float32)
    return rgb8, depth
