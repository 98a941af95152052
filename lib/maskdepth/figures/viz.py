"""Figures drawn with matplotlib: the figure in pixels, its title, PNG files, and the charts of numbers
(per-sample metric histograms, training curves per epoch and split).

Figures are `matplotlib.figure.Figure` objects (no pyplot), so saving never touches the
notebook's inline backend and works on headless machines. Two ways to save: `save_figure`
keeps the figure's exact size in pixels (the grids of `maskdepth.figures.grids` depend on it);
`save_figure_trimmed` crops to what is drawn (the pyplot previews of `maskdepth.figures.preview`).
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from maskdepth.core.imageio import PNG_COMPRESS_LEVEL

DPI = 100
MAX_WIDTH_PX = 1600


def new_figure(width_px: float, height_px: float):
    """An empty figure of the given size in pixels (at DPI), outside pyplot.

    pyplot keeps every figure alive until closed and the notebook's inline backend shows
    them all; these figures are freed like any object and show (as PNG) only when a
    notebook cell returns or displays one.
    """
    return _figure_class()(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


@functools.cache
def _figure_class():
    """A Figure that renders itself as PNG in notebooks (built on first use: matplotlib loads lazily)."""
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=DPI)
            return buf.getvalue()

    return NotebookFigure


TITLE_CHAR_PX = 7  # about the width of one title character (fontsize 10 at DPI 100)


def set_title(fig, title: str, **kwargs) -> None:
    """Figure title, wrapped to the figure's width (at most 3 lines)."""
    import textwrap

    width_px = fig.get_figwidth() * DPI
    lines = textwrap.wrap(title, max(20, int(width_px - 24) // TITLE_CHAR_PX))[:3]
    fig.suptitle("\n".join(lines), fontsize=10, **kwargs)


def figure_to_array(fig) -> np.ndarray:
    """The figure rendered at DPI as uint8 RGB [H, W, 3] (what `save_figure` writes), e.g. for
    TensorBoard's add_image."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    buf.seek(0)
    with Image.open(buf) as png:
        return np.asarray(png.convert("RGB")).copy()


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write a figure as PNG atomically at its exact size in pixels (the figure stays usable, e.g. to
    show in a notebook)."""
    from maskdepth.core.fileio import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    write_bytes(path, buf.getvalue())


def save_figure_trimmed(fig, path, dpi: int = DPI) -> None:
    """Save a figure as PNG atomically, cropped to what is drawn (`bbox_inches="tight"`)."""
    from maskdepth.core.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})



def histogram_figure(values: Mapping[str, Sequence[float]], title: str = "", bins: int = 20):
    """One histogram per per-sample metric (e.g. IoU, AbsRel), with mean and median marked."""
    names = [k for k, v in values.items() if len(v)]
    fig = new_figure(min(MAX_WIDTH_PX, 420 * max(1, len(names))), 360)
    for k, name in enumerate(names):
        v = np.asarray(values[name], dtype=np.float64)
        v = v[np.isfinite(v)]
        ax = fig.add_subplot(1, len(names), k + 1)
        ax.hist(v, bins=bins, color="#4c72b0", edgecolor="white")
        if v.size:
            ax.axvline(v.mean(), color="black", linestyle="-", linewidth=1, label=f"mean {v.mean():.3f}")
            ax.axvline(np.median(v), color="black", linestyle="--", linewidth=1, label=f"median {np.median(v):.3f}")
            ax.legend(fontsize=8)
        ax.locator_params(axis="x", nbins=5)
        ax.set_xlabel(f"{name} per sample")
        ax.set_ylabel("samples")
    if title:
        set_title(fig, title)
    fig.tight_layout()
    return fig


_SPLIT_STYLES = {"seen": "-", "unseen": "--", "ood": ":"}
_LOSS_KEYS = [("train", "loss"), ("train", "mask"), ("train", "depth"), *((s, "loss") for s in _SPLIT_STYLES)]


def _series(epochs: list[dict], split: str, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for e in epochs:
        v = (e.get(split) or {}).get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            xs.append(e["epoch"])
            ys.append(float(v))
    return xs, ys


def training_curves_figure(history: Mapping, title: str = ""):
    """Losses per task (lr on a second axis), then quality metrics per epoch for each validation
    split (seen solid, unseen dashed, ood dotted): the catalogue's curve metrics, split by direction."""
    from maskdepth.evaluation.catalogue import CURVE_KEYS, higher_is_better

    epochs = list(history.get("epochs") or [])
    fig = new_figure(1500, 420)
    ax_loss = fig.add_subplot(1, 3, 1)
    for split, key in _LOSS_KEYS:
        xs, ys = _series(epochs, split, key)
        if xs:
            ax_loss.plot(xs, ys, marker=".", label=f"{split} {key}", linestyle="-" if split == "train" else "--")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("losses", fontsize=10)
    lr_x = [e["epoch"] for e in epochs if isinstance(e.get("lr"), (int, float))]
    lr_y = [e["lr"] for e in epochs if isinstance(e.get("lr"), (int, float))]
    handles, labels = ax_loss.get_legend_handles_labels()
    if lr_x:
        ax_lr = ax_loss.twinx()
        (line,) = ax_lr.plot(lr_x, lr_y, color="grey", linewidth=1, linestyle=":", label="lr")
        ax_lr.set_ylabel("learning rate")
        if min(lr_y) > 0:
            ax_lr.set_yscale("log")
        handles.append(line)
        labels.append("lr")
    if handles:
        ax_loss.legend(handles, labels, fontsize=7)
    higher = tuple(k for k in CURVE_KEYS if higher_is_better(k))
    lower = tuple(k for k in CURVE_KEYS if not higher_is_better(k))
    for k, (keys, name) in enumerate([(higher, "higher is better"), (lower, "lower is better")]):
        ax = fig.add_subplot(1, 3, k + 2)
        for n, key in enumerate(keys):
            for split, style in _SPLIT_STYLES.items():  # one colour per metric, one line style per split
                xs, ys = _series(epochs, split, key)
                if xs:
                    ax.plot(xs, ys, marker=".", linestyle=style, color=f"C{n}", label=f"{split} {key}")
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        set_title(fig, title)
    fig.tight_layout()
    return fig

