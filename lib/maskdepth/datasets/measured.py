"""Real photographs with measured depth, from packages already installed (nothing downloaded).

`motorcycle`: scikit-image's `data.stereo_motorcycle()`, the Middlebury 2014 "Motorcycle"
scene (Scharstein et al., GCPR 2014) at a quarter of its resolution: the left view and its
ground-truth disparity. Metric depth from the calibration, scaled like the images:
depth = f * baseline / (disparity + doffs), with f = 3979.911 / 4 px, baseline 0.193001 m and
doffs = 124.343 / 4 px; pixels without a disparity (occluded, unmatched) have no depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskdepth.core.errors import MaskdepthError

MOTORCYCLE_FOCAL_PX = 3979.911 / 4
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 124.343 / 4


@dataclass(frozen=True)
class MeasuredPhoto:
    """A photo and its measured depth: `image` uint8 [H, W, 3], `depth` float32 [H, W] metres
    (NaN where nothing was measured)."""

    name: str
    image: np.ndarray
    depth: np.ndarray
    about: str


def disparity_to_depth(disparity: np.ndarray, focal_px: float, baseline_m: float, doffs_px: float) -> np.ndarray:
    """Metric depth of a rectified stereo pair's disparity; NaN where it is not finite or positive."""
    disparity = np.asarray(disparity, np.float64)
    ok = np.isfinite(disparity) & (disparity > 0)
    depth = np.full(disparity.shape, np.nan)
    depth[ok] = focal_px * baseline_m / (disparity[ok] + doffs_px)
    return depth.astype(np.float32)


def motorcycle() -> MeasuredPhoto:
    from maskdepth.models.pretrained import require_package

    left, _right, disparity = require_package("skimage.data", "the real-photo check").stereo_motorcycle()
    depth = disparity_to_depth(disparity, MOTORCYCLE_FOCAL_PX, MOTORCYCLE_BASELINE_M, MOTORCYCLE_DOFFS_PX)
    return MeasuredPhoto("motorcycle", np.ascontiguousarray(left), depth,
                         "Middlebury 2014 Motorcycle (scikit-image), depth from stereo disparity")


MEASURED_PHOTOS = {"motorcycle": motorcycle}


def measured_photos(names=None) -> list[MeasuredPhoto]:
    """The photos named (default: all), loaded."""
    names = list(MEASURED_PHOTOS) if names is None else list(names)
    unknown = [n for n in names if n not in MEASURED_PHOTOS]
    if unknown:
        raise MaskdepthError(f"unknown real photo {unknown[0]!r}; choose from {', '.join(MEASURED_PHOTOS)}")
    return [MEASURED_PHOTOS[n]() for n in names]
