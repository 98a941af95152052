"""The pinhole camera of a view, and how a view's camera is drawn from the seed.

Ray directions are scaled to a unit component along the optical axis, so the ray parameter at a
hit is its z-depth, the depth convention of every label; angles enter only through rational
half-angle formulas, so no platform-dependent trigonometry enters the labels (same seed, same
bytes, on any machine). A view's camera is a pure function of (seed, background id, placement
index); the highest cameras are held out for the `ood` split.
Coordinate conventions and details: docs/world.md, "Cameras"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskdepth.world.textures import hash_uniform

# Camera ranges of the training world; heights above TRAIN_HEIGHT_MAX only in the ood split.
HEIGHT_MIN, TRAIN_HEIGHT_MAX, HEIGHT_MAX = 0.3, 2.4, 3.0
PITCH_HALF_TAN_MAX = 0.315  # tan(35 deg / 2): pitch 0 to 35 degrees down
ROLL_HALF_TAN_MAX = 0.035  # about +-4 degrees of roll
YAW_HALF_TAN_MAX = 0.2  # about +-23 degrees of yaw
# focal (image widths) = 0.5 / tan(fov / 2): vertical field of view 100 to 35 degrees
FOCAL_MIN, FOCAL_MAX = 0.42, 1.59
# Share of ood views drawn from the held-out camera range (the rest from the training range).
OOD_HIGH_SHARE = 0.5


def rational_angle(half_tan):
    """(sin, cos) of the angle whose half has tangent `half_tan` (exact rational formulas)."""
    q = np.asarray(half_tan, dtype=np.float64)
    den = 1.0 + q * q
    return 2.0 * q / den, (1.0 - q * q) / den


@dataclass(frozen=True)
class Camera:
    height: float
    sin_pitch: float
    cos_pitch: float
    focal: float
    sin_roll: float = 0.0
    cos_roll: float = 1.0
    sin_yaw: float = 0.0
    cos_yaw: float = 1.0
    x: float = 0.0

    def rays(self, u, v):
        """World direction (dx, dy, dz) of the rays through (u, v), scaled so t is z-depth."""
        xi = (np.asarray(u, dtype=np.float64) - 0.5) / self.focal
        yi = (np.asarray(v, dtype=np.float64) - 0.5) / self.focal  # image y points down
        xc = xi * self.cos_roll - yi * self.sin_roll
        yc = xi * self.sin_roll + yi * self.cos_roll
        # camera axes before yaw: right (1,0,0), down (0,-cos p,-sin p), forward (0,-sin p,cos p)
        dx0 = xc
        dy = -yc * self.cos_pitch - self.sin_pitch
        dz0 = self.cos_pitch - yc * self.sin_pitch
        dx = dx0 * self.cos_yaw + dz0 * self.sin_yaw
        dz = dz0 * self.cos_yaw - dx0 * self.sin_yaw
        return np.broadcast_arrays(dx, dy, dz)

    @property
    def origin(self) -> tuple[float, float, float]:
        return (self.x, self.height, 0.0)

    def project(self, x, y, z):
        """World points -> (u, v, z-depth); inverse of `rays`."""
        rx = np.asarray(x, dtype=np.float64) - self.x
        ry = np.asarray(y, dtype=np.float64) - self.height
        rz = np.asarray(z, dtype=np.float64)
        x0 = rx * self.cos_yaw - rz * self.sin_yaw
        z0 = rx * self.sin_yaw + rz * self.cos_yaw
        depth = -ry * self.sin_pitch + z0 * self.cos_pitch
        down = -ry * self.cos_pitch - z0 * self.sin_pitch
        with np.errstate(divide="ignore", invalid="ignore"):
            xi, yi = x0 / depth, down / depth
        xc = xi * self.cos_roll + yi * self.sin_roll
        yc = yi * self.cos_roll - xi * self.sin_roll
        return 0.5 + self.focal * xc, 0.5 + self.focal * yc, depth

    def pixel_window(self, x, y, z, size: int, pad: int = 1) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1): the pixels that hold the projection of world points (x, y, z), `pad`
        pixels wider on every side and clipped to the image; the whole image when a point is
        behind or almost at the camera (its projection is unbounded)."""
        u, v, depth = self.project(x, y, z)
        if (depth <= 0.05).any():
            return 0, size, 0, size
        x0, x1 = int(np.floor(u.min() * size)) - pad, int(np.ceil(u.max() * size)) + pad
        y0, y1 = int(np.floor(v.min() * size)) - pad, int(np.ceil(v.max() * size)) + pad
        return max(y0, 0), min(y1, size), max(x0, 0), min(x1, size)

    def ground_point(self, u, v):
        """World (x, z) and z-depth where the rays through (u, v) meet the ground (inf above the horizon)."""
        dx, dy, dz = self.rays(u, v)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(dy < 0.0, self.height / -dy, np.inf)
        return self.x + t * dx, t * dz, t


def draw_cameras(seed: int, bg, placement, ood=False) -> dict[str, np.ndarray]:
    """Camera parameters of views (bg, placement), vectorised: counter-based hashing.

    Returns arrays height, sin/cos of pitch, roll and yaw, focal; `x` (lateral position)
    is a uniform draw in [0, 1) that the scene maps onto its own width.
    """
    bg = np.asarray(bg, dtype=np.int64)
    placement = np.asarray(placement, dtype=np.int64)
    r = [hash_uniform(int(seed), 7, bg, placement, k) for k in range(7)]
    train_height = HEIGHT_MIN + (TRAIN_HEIGHT_MAX - HEIGHT_MIN) * r[0] * r[0] * (3.0 - 2.0 * r[0])
    high = TRAIN_HEIGHT_MAX + (HEIGHT_MAX - TRAIN_HEIGHT_MAX) * r[0]
    use_high = np.asarray(ood, dtype=bool) & (r[6] < OOD_HIGH_SHARE)
    height = np.where(use_high, high, train_height)
    # Higher cameras look further down, as people hold them (the pitch range stays 0-35 deg).
    pitch_q = PITCH_HALF_TAN_MAX * np.clip(0.55 * r[1] + 0.45 * r[1] * (height / HEIGHT_MAX), 0.0, 1.0)
    sp, cp = rational_angle(pitch_q)
    sr, cr = rational_angle(ROLL_HALF_TAN_MAX * (2.0 * r[2] - 1.0))
    sy, cy = rational_angle(YAW_HALF_TAN_MAX * (2.0 * r[3] - 1.0))
    focal = FOCAL_MIN + (FOCAL_MAX - FOCAL_MIN) * r[4]
    return {"height": height, "sin_pitch": sp, "cos_pitch": cp, "sin_roll": sr, "cos_roll": cr,
            "sin_yaw": sy, "cos_yaw": cy, "focal": focal, "x": r[5]}


def camera_at(params: dict[str, np.ndarray], i: int, x: float) -> Camera:
    """Row i of `draw_cameras` output as a Camera at lateral position x (metres)."""
    keys = ("height", "sin_pitch", "cos_pitch", "focal", "sin_roll", "cos_roll", "sin_yaw", "cos_yaw")
    return Camera(**{k: float(np.asarray(params[k])[i]) for k in keys}, x=float(x))
