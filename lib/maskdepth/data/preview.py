"""Figures of samples: for each, the bg, the fg sprite, the fg_bg composite, the mask and the
colour-mapped depth (log scale over [DEPTH_MIN, DEPTH_MAX], the range the models predict)."""

from __future__ import annotations

import numpy as np

from maskdepth.depth import DEPTH_MAX, DEPTH_MIN

COLUMNS = ("bg", "fg", "fg_bg", "mask", "depth")


def depth_to_rgb(depth: np.ndarray, cmap: str = "magma_r") -> np.ndarray:
    """Depth (m) -> RGB float [..., 3], log-scaled so near and far get equal contrast."""
    import matplotlib

    d = np.clip(np.asarray(depth, dtype=np.float64), DEPTH_MIN, DEPTH_MAX)
    t = np.log(d / DEPTH_MIN) / np.log(DEPTH_MAX / DEPTH_MIN)
    return matplotlib.colormaps[cmap](t)[..., :3]


def checkerboard_under(rgba: np.ndarray, square: int = 8) -> np.ndarray:
    """RGBA uint8 -> RGB float over a grey checkerboard, so transparency is visible."""
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    board = np.where(((yy // square + xx // square) % 2 == 0)[..., None], 0.8, 0.6)
    a = rgba[..., 3:4] / 255.0
    return rgba[..., :3] / 255.0 * a + board * (1 - a)


def sample_grid(dataset, indices, title: str | None = None):
    """A matplotlib Figure: one row per sample, columns bg, fg, fg_bg, mask, depth."""
    import matplotlib.pyplot as plt

    indices = list(indices)
    synthetic = hasattr(dataset, "sources")  # dataset folders hold no fg sprites
    columns = COLUMNS if synthetic else tuple(c for c in COLUMNS if c != "fg")
    fig, axes = plt.subplots(len(indices), len(columns), figsize=(2.2 * len(columns), 2.2 * len(indices)),
                             squeeze=False)
    for row, i in enumerate(indices):
        if synthetic:
            sample = dataset.compose(i)
            src = dataset.sources(i)
            info = src["info"]
        else:
            sample = {k: v.numpy() for k, v in dataset[i].items() if k != "index"}
        panels = {
            "bg": sample["bg"].transpose(1, 2, 0),
            "fg_bg": sample["image"].transpose(1, 2, 0),
            "mask": sample["mask"][0],
            "depth": depth_to_rgb(sample["depth"][0]),
        }
        if synthetic:
            panels["fg"] = checkerboard_under(src["fg"][:, ::-1] if info["flip"] else src["fg"])
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(panels[name], cmap="gray" if name == "mask" else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
        label = f"#{i} bg{info['bg']} fg{info['fg']}\n{info['fg_kind']} {info['fg_depth']:.1f} m" if synthetic else f"#{i}"
        axes[row, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi: int = 100) -> None:
    """Save a figure as PNG atomically (a reader never sees half a file)."""
    from maskdepth.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
