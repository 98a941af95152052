"""Pixel sampling and shading shared by scenes (`backgrounds`) and objects (`foregrounds`).

Colour is the mean of SUPERSAMPLE x SUPERSAMPLE rays per pixel (anti-aliased edges), labels
come from the ray through the pixel centre; surfaces are lit by Lambertian shading plus
ambient. Exact arithmetic only (fixed order of additions), so bytes match on any machine.
"""

from __future__ import annotations

import numpy as np

SUPERSAMPLE = 2


def lambert(normal, light, ambient=0.45, diffuse=0.65):
    """Brightness factor of surfaces with unit `normal` under a unit `light` direction."""
    nl = normal[0] * light[0] + normal[1] * light[1] + normal[2] * light[2]
    return ambient + diffuse * np.clip(nl, 0.0, 1.0)


def pixel_centres(size: int, offset: float = 0.5, step: int = 1) -> np.ndarray:
    """Normalised coordinates of pixel centres (or of sub-pixel samples) along one axis."""
    return (np.arange(size * step, dtype=np.float64) + offset) / (size * step)


def box_mean(a: np.ndarray) -> np.ndarray:
    """Mean over SUPERSAMPLE x SUPERSAMPLE blocks: [H*k, W*k, C] -> [H, W, C].

    Explicit sums: a fixed order of additions on every machine."""
    k = SUPERSAMPLE
    a = a.reshape(a.shape[0] // k, k, a.shape[1] // k, k, a.shape[2])
    acc = np.zeros(a[:, 0, :, 0].shape)
    for i in range(k):
        for j in range(k):
            acc = acc + a[:, i, :, j, :]
    return acc / (k * k)
