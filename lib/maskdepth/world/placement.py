"""Placement geometry: where on a view's floor, and how large, each sample's object stands.

A placement of (bg, fg, placement index) is a foot point (u, v) in normalised image
coordinates plus a size factor `scale` (the scene's own scale, `Background.object_scale`,
times a jitter), a pure function of (seed, bg, fg, placement) through
counter-based hashing and the view's exact camera (`sources.view_cameras`). `place` returns
them as integers of 1e-6 (QUANT), the form `manifest` stores them in, so the CSV holds them
exactly and the object's pose is reproducible from the manifest alone.
"""

from __future__ import annotations

import numpy as np

from maskdepth.world.camera import Camera
from maskdepth.world.foregrounds import coverage
from maskdepth.world.sources import SourceSpec, object_table, scene_table, view_cameras
from maskdepth.world.textures import hash_uniform

QUANT = 1_000_000  # manifest floats are integers of 1e-6

# Placement rules. Most placements aim at a prominent object: a mask area drawn log-uniformly
# in [AREA_NEAR_MIN, AREA_NEAR_MAX] of the image; the others (SMALL_SHARE) at a small one in
# [AREA_SMALL_MIN, AREA_NEAR_MIN]. The area is reached by choosing the depth of the foot point
# (nearer = larger), as far as the visible floor allows: the foot stays above a bottom margin
# drawn in [V_BOTTOM - BOTTOM_SPREAD, V_BOTTOM], on the scene's walkable floor (in front of
# walls, steps and facades, between side walls), the object's top at or below row TOP_MIN
# (except for a share CUT_SHARE of placements, which may be cut by the top or side edges of
# the frame), its height at most HEIGHT_MAX of the image.
AREA_NEAR_MIN, AREA_NEAR_MAX = 0.06, 0.45
AREA_SMALL_MIN = 0.01
SMALL_SHARE = 0.2
HEIGHT_MAX = 0.92
WIDTH_MAX = 0.9
TOP_MIN, TOP_CUT, CUT_SHARE = 0.02, 0.15, 0.12
CUT_SHARE_CLOSE = 0.3  # scenes of their own scale (close-ups, desks): objects cut by the frame more often
V_BOTTOM, BOTTOM_SPREAD = 0.99, 0.12
U_MARGIN = 0.08
SCALE_JITTER = 0.1
RETRIES = 8


def _object_columns(spec: SourceSpec) -> dict[str, np.ndarray]:
    fgs = object_table(spec)
    return {
        "height": np.array([f.height_m for f in fgs]),
        "width": np.array([f.width_m for f in fgs]),
        "coverage": np.array([max(coverage(f), 0.05) for f in fgs]),
    }


def depth_for_pixel_height(frac, size_m, h, s, c, f):
    """Foot depth (m) at which an upright object of height size_m spans `frac` of the image height.

    Projecting its foot and top (level camera roll) gives the pixel height
    frac = f * size_m * (d - h s) / (c d (d - size_m s)), a quadratic in d; the larger root
    is the one in front of the camera. An object lower than the camera has a largest possible
    pixel height; beyond it there is no root and the result is 0 (as near as possible).
    """
    a = frac * c
    b = frac * c * size_m * s + f * size_m
    disc = b * b - 4.0 * a * f * size_m * h * s
    return np.where(disc >= 0.0, (b + np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a), 0.0)


def depth_for_top_row(v_top, size_m, h, s, c, f):
    """Smallest foot depth at which the object's top is at or below image row v_top (0 if any)."""
    k = (v_top - 0.5) * c / f
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (h - size_m * c * c + k * size_m * s) / (s + k)
    return np.where(s + k < 0.0, np.maximum(d, 0.0), 0.0)


def place(spec: SourceSpec, bg: np.ndarray, fg: np.ndarray, placement: np.ndarray, objects=None):
    """Foot points and size factors for (bg, fg, placement) triples, as integers of 1e-6.

    A target mask area (see the placement rules above) becomes a target pixel height through
    the object's bounding-box aspect and coverage, then a foot depth through the camera
    projection, clipped to what the view allows. The foot's ground point (through the view's
    exact camera, roll and yaw included) must lie on the scene's walkable floor: while it
    does not, the foot moves nearer and towards the image centre (RETRIES times).
    """
    obj = objects or _object_columns(spec)
    scenes = scene_table(spec)
    bg = np.asarray(bg, dtype=np.int64)
    r_area, r_u, r_scale, r_small, r_cut, r_bottom, r_size = (hash_uniform(spec.seed, 3, bg, fg, placement, k)
                                                              for k in range(7))
    cams = view_cameras(spec, bg, placement)
    cam = Camera(**cams)
    h, s, c, f = cams["height"], cams["sin_pitch"], cams["cos_pitch"], cams["focal"]
    size_lo = np.array([sc.object_scale[0] for sc in scenes])[bg]
    size_hi = np.array([sc.object_scale[1] for sc in scenes])[bg]
    close = np.array([sc.cam_height is not None for sc in scenes])[bg]
    # the scene's size factor (miniatures on a desk), times the jitter
    scale = (size_lo + (size_hi - size_lo) * r_size) * (1.0 - SCALE_JITTER + 2.0 * SCALE_JITTER * r_scale)
    size_m = obj["height"][fg] * scale
    half_width = 0.5 * obj["width"][fg] * scale
    aspect = obj["width"][fg] / obj["height"][fg]
    small = r_small < SMALL_SHARE
    lo = np.where(small, AREA_SMALL_MIN, AREA_NEAR_MIN)
    hi = np.where(small, AREA_NEAR_MIN, AREA_NEAR_MAX)
    area = lo * (hi / lo) ** r_area
    frac = np.minimum(np.sqrt(area / (aspect * obj["coverage"][fg])), np.minimum(HEIGHT_MAX, 1.0 / aspect))
    cut = r_cut < np.where(close, CUT_SHARE_CLOSE, CUT_SHARE)
    top_min = np.where(cut, -TOP_CUT, TOP_MIN)
    v_bottom = V_BOTTOM - BOTTOM_SPREAD * r_bottom
    z_near = h / (((v_bottom - 0.5) / f) * c + s)  # ground depth at the bottom margin
    # ... and no nearer than where the object's width fills WIDTH_MAX of the frame
    z_near = np.maximum(z_near, f * 1.5 * half_width / WIDTH_MAX + half_width)
    walk_x = np.array([sc.walk_x for sc in scenes])[bg]
    walk_z = np.array([sc.walk_z for sc in scenes])[bg]
    z_far = np.maximum(walk_z * c + h * s, z_near)  # ground depth at the end of the walkable floor
    depth = np.maximum(depth_for_pixel_height(frac, size_m, h, s, c, f), depth_for_top_row(top_min, size_m, h, s, c, f))
    depth = np.clip(depth, z_near, z_far)
    margin = np.where(cut, 0.0, U_MARGIN)
    room = np.minimum(half_width, 0.45 * (walk_x[:, 1] - walk_x[:, 0]))  # wider than a corridor: it touches a wall
    x_lo, x_hi = walk_x[:, 0] + room, walk_x[:, 1] - room
    cam_x = cams["x"]
    u = np.full(len(bg), 0.5)
    v = np.full(len(bg), 0.5)
    ok = np.zeros(len(bg), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for attempt in range(RETRIES + 1):
            # A world foot point at the target depth, laterally anywhere on the walkable floor that
            # the frustum shows at that depth; projected through the exact camera (roll, yaw).
            r_x = r_u if attempt == 0 else hash_uniform(spec.seed, 3, bg, fg, placement, 10 + attempt)
            z = (depth - h * s) / c
            half_view = (0.5 - margin) / f * depth
            lo_x = np.maximum(x_lo, cam_x - half_view)
            hi_x = np.maximum(np.minimum(x_hi, cam_x + half_view), lo_x)
            x = lo_x + r_x * (hi_x - lo_x)
            u_try, v_try, d_try = cam.project(x, np.zeros(len(bg)), z)
            half_frame = np.where(cut, 0.0, np.clip(f * half_width / depth, 0.0, 0.45))
            inside = ((d_try > 0) & (u_try >= np.maximum(margin, half_frame)) & (u_try <= 1 - np.maximum(margin, half_frame))
                      & (v_try > 0.0) & (v_try <= V_BOTTOM) & (z <= walk_z) & (z > 0))
            take = inside & ~ok
            u, v, ok = np.where(take, u_try, u), np.where(take, v_try, v), ok | inside
            depth = np.where(ok, depth, z_near + 0.7 * (depth - z_near))
        # Last resort (a camera close to a wall and turned to it): the centre of the image's lower part.
        u, v = np.where(ok, u, 0.5), np.where(ok, v, 0.8)
    q = lambda x: np.rint(x * QUANT).astype(np.int64)  # noqa: E731
    return q(u), q(v), q(scale)
