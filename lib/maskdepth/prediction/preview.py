"""The preview panel written beside each prediction: input, mask overlay, coloured depth and its
colour bar, shrunk so its longer side is at most PREVIEW_MAX_SIDE.
"""

from __future__ import annotations

import numpy as np

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN

PREVIEW_MAX_SIDE = 1024  # preview panels are shrunk to this; the other outputs never are
OVERLAY_COLOR = np.array([255, 40, 40], np.float32)
OVERLAY_ALPHA = 0.5
def preview_size(size) -> tuple[int, int]:
    """The image's size shrunk (aspect kept) so that its longer side is at most PREVIEW_MAX_SIDE."""
    height, width = size
    scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def preview_image(image: np.ndarray, result: dict[str, np.ndarray], depth_range=None) -> np.ndarray:
    """uint8 [H, W*k (+ bar), 3]: the input, then the mask overlaid in red, then the coloured depth
    (near = bright, log scale over `depth_range` (vmin, vmax) in metres, default the fixed
    [DEPTH_MIN, DEPTH_MAX]) followed by its colour bar in metres (`depthviz.colorbar_strip`)."""
    from maskdepth.figures.depthviz import colorbar_strip, depth_to_uint8

    panels = [image]
    if "mask" in result:
        tint = result["mask"][:, :, None] * OVERLAY_ALPHA
        panels.append(np.rint(image * (1.0 - tint) + OVERLAY_COLOR * tint).astype(np.uint8))
    if "depth" in result:
        vmin, vmax = depth_range or (DEPTH_MIN, DEPTH_MAX)
        panels.append(depth_to_uint8(result["depth"], vmin, vmax))
        panels.append(colorbar_strip(image.shape[0], float(vmin), float(vmax)))
    return np.concatenate(panels, axis=1)
