"""Figures of samples: image, mask and depth, the depth coloured near = bright on a log scale
over [DEPTH_MIN, DEPTH_MAX] (the range the models predict) with a colour bar in metres: the
convention of every depth picture, defined once in `maskdepth.figures.depthviz`.

* `sample_grid(dataset, indices)`: one row per sample: bg, fg_bg, mask, depth;
* `family_grid(spec)`: one sample of every scene family and every object family (training
  and held-out), so a reader sees what the world holds and what the `ood` split holds back.
"""

from __future__ import annotations

import numpy as np

# The one depth convention of every picture (near = bright, log scale, colour bar in metres).
from maskdepth.figures.depthviz import depth_colorbar, depth_to_rgb

COLUMNS = ("bg", "fg_bg", "mask", "depth")
MIN_SHOWN = 0.003  # the share of the picture a family example's object must cover to be shown


def sample_grid(dataset, indices, title: str | None = None):
    """A matplotlib Figure: one row per sample, columns bg, fg_bg, mask, depth (+ colour bar)."""
    import matplotlib.pyplot as plt

    indices = list(indices)
    synthetic = hasattr(dataset, "composer")
    fig, axes = plt.subplots(len(indices), len(COLUMNS), figsize=(2.2 * len(COLUMNS) + 1.2, 2.2 * len(indices)),
                             squeeze=False, layout="constrained")
    for row, i in enumerate(indices):
        if synthetic:
            sample = dataset.compose(i)
            info = dataset.info(i)
        else:
            sample = {k: v.numpy() for k, v in dataset[i].items() if k != "index"}
        panels = {
            "bg": sample["bg"].transpose(1, 2, 0),
            "fg_bg": sample["image"].transpose(1, 2, 0),
            "mask": sample["mask"][0],
            "depth": depth_to_rgb(sample["depth"][0]),
        }
        for col, name in enumerate(COLUMNS):
            ax = axes[row, col]
            ax.imshow(np.clip(panels[name], 0, 1), cmap="gray" if name == "mask" else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
        label = (f"#{i} {info['bg_family']}\n{info['fg_family']} at {info['foot_z']:.1f} m" if synthetic else f"#{i}")
        axes[row, 0].set_ylabel(label, fontsize=8)
    depth_colorbar(fig, axes[:, -1])
    if title:
        fig.suptitle(title)
    return fig


def family_examples(spec, seed_offset: int = 0) -> list[tuple[str, int, int, int]]:
    """(label, bg, fg, placement) for one sample of every scene family and every object family.

    Scene families are shown with a training object, object families in a training scene;
    held-out (ood) families are labelled so."""
    from maskdepth.world.backgrounds import FAMILIES as SCENES
    from maskdepth.world.backgrounds import OOD_FAMILIES as OOD_SCENES
    from maskdepth.world.foregrounds import FAMILIES as OBJECTS
    from maskdepth.world.foregrounds import OOD_FAMILIES as OOD_OBJECTS
    from maskdepth.world.sources import object_table, scene_table

    scenes, objects = scene_table(spec), object_table(spec)
    examples = []
    for k, family in enumerate(SCENES):
        bg = next((s.id for s in scenes if s.family == family), None)
        if bg is not None:
            tag = " (ood)" if family in OOD_SCENES else ""
            examples.append((f"scene: {family}{tag}", bg, (3 * k + seed_offset) % spec.n_fg, k + seed_offset))
    for k, family in enumerate(OBJECTS):
        fg = next((o.id for o in objects if o.family == family), None)
        if fg is not None:
            tag = " (ood)" if family in OOD_OBJECTS else ""
            examples.append((f"object: {family}{tag}", (7 * k + seed_offset) % spec.n_bg, fg, k + seed_offset))
    return examples


def shown_sample(spec, bg: int, fg: int, placement: int, size: int, cache_dir=None, tries: int = 8) -> dict:
    """The sample of (bg, fg) at `placement`, or at the first of the next placements whose object
    covers at least MIN_SHOWN of the picture: a placement may hide it behind clutter or the frame's edge."""
    from maskdepth.world.composition import render_sample

    for p in range(placement, placement + tries):
        sample = render_sample(spec, bg, fg, p, size, cache_dir=cache_dir)
        if sample["mask"].mean() >= MIN_SHOWN:
            break
    return sample


def family_grid(spec, size: int = 96, cache_dir=None, columns: int = 6):
    """A Figure: image and depth of one sample per scene family and per object family."""
    import matplotlib.pyplot as plt

    examples = family_examples(spec)
    rows = -(-len(examples) // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(2.0 * columns + 1.2, 4.1 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.set_axis_off()
    for k, (label, bg, fg, placement) in enumerate(examples):
        r, c = 2 * (k // columns), k % columns
        sample = shown_sample(spec, bg, fg, placement, size, cache_dir=cache_dir)
        axes[r, c].imshow(np.clip(sample["image"].transpose(1, 2, 0), 0, 1), interpolation="nearest")
        axes[r, c].set_title(label, fontsize=9)
        axes[r + 1, c].imshow(depth_to_rgb(sample["depth"][0]), interpolation="nearest")
        axes[r + 1, c].contour(sample["mask"][0], levels=[0.5], colors="cyan", linewidths=0.8)
    depth_colorbar(fig, axes[1::2, :].ravel().tolist())
    fig.suptitle("every scene family and object family: image, and depth with the object's mask outline (cyan)")
    return fig

