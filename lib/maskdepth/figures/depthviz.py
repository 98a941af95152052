"""How depth is drawn, everywhere: one colour convention for every picture of depth.

Data previews, validation and TensorBoard grids, the real-photo check and `maskdepth predict` all
draw depth alike: near = bright (`DEPTH_CMAP`), a log scale (the models' own parameterisation, so
near and far get equal relative resolution), the fixed range [DEPTH_MIN, DEPTH_MAX] by default (the
same colour means the same distance in every picture, so two compare by eye; `auto_range` where
contrast matters more, always written beside the picture) and a colour bar in metres.
Details: docs/evaluation.md, "Depth pictures"."""

from __future__ import annotations

import functools
import math

import numpy as np

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, valid_depth

DEPTH_CMAP = "magma_r"  # reversed: near (small depth) is bright
DEPTH_TICKS = (0.25, 0.5, 1, 2, 5, 10, 20, 40, 80)
DEPTH_LABEL = "depth (m), log scale, near = bright"
DEPTH_RANGES = ("fixed", "auto")  # the choices of `maskdepth predict --depth-range`


def _position(depth, vmin: float, vmax: float) -> np.ndarray:
    """Depth (m) -> colour position t in [0, 1], log-scaled over [vmin, vmax]; non-finite -> NaN
    (the colour map's "bad" colour: black)."""
    d = np.asarray(depth, dtype=np.float64)
    d = np.clip(np.where(np.isfinite(d), d, np.nan), vmin, vmax)
    return np.log(d / vmin) / math.log(vmax / vmin)


def depth_to_rgb(depth: np.ndarray, cmap: str = DEPTH_CMAP, vmin: float = DEPTH_MIN,
                 vmax: float = DEPTH_MAX) -> np.ndarray:
    """Depth (m) -> RGB float [..., 3], log-scaled so near and far get equal contrast; near = bright."""
    import matplotlib

    return matplotlib.colormaps[cmap](_position(depth, vmin, vmax))[..., :3]


def depth_to_uint8(depth: np.ndarray, vmin: float = DEPTH_MIN, vmax: float = DEPTH_MAX,
                   cmap: str = DEPTH_CMAP) -> np.ndarray:
    """Depth (m) [H,W] -> uint8 RGB [H,W,3] with the same convention as `depth_to_rgb`."""
    import matplotlib

    rgba = matplotlib.colormaps[cmap](_position(depth, vmin, vmax), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def auto_range(*depths) -> tuple[float, float]:
    """(vmin, vmax): min and max of the finite positive depths given, kept inside
    [DEPTH_MIN, DEPTH_MAX]; a flat or empty set still gets a non-empty range."""
    finite = []
    for d in depths:
        if d is None:
            continue
        if hasattr(d, "detach"):
            d = d.detach().float().cpu().numpy()
        arr = np.asarray(d)
        finite.append(arr[valid_depth(arr)].ravel())
    values = np.concatenate(finite) if finite else np.empty(0)
    if values.size == 0:
        return DEPTH_MIN, DEPTH_MAX
    lo = float(np.clip(values.min(), DEPTH_MIN, DEPTH_MAX))
    hi = float(np.clip(values.max(), DEPTH_MIN, DEPTH_MAX))
    if hi <= lo * 1.001:  # flat maps still need a non-empty range
        lo, hi = max(DEPTH_MIN, lo / 1.1), min(DEPTH_MAX, hi * 1.1)
    return lo, hi


def depth_ticks(vmin: float = DEPTH_MIN, vmax: float = DEPTH_MAX) -> list[float]:
    """Colour-bar ticks in metres: both ends, and the round values of DEPTH_TICKS (or 1-2-5
    steps) well inside the range."""
    inside = [t for t in DEPTH_TICKS if vmin * 1.15 < t < vmax / 1.15]
    if len(inside) < 2:
        inside = [m * 10.0**e for e in range(math.floor(math.log10(vmin)), math.ceil(math.log10(vmax)) + 1)
                  for m in (1, 2, 5) if vmin * 1.15 < m * 10.0**e < vmax / 1.15]
    return [vmin, *inside, vmax]


def _fitting(ticks: list[float], vmin: float, vmax: float, length_px: float, gap_px: float) -> list[float]:
    """The ticks that stay `gap_px` apart on a log bar `length_px` long; both ends are kept
    first (when they fit at all), then the inner ticks from far to near."""
    span = math.log(vmax / vmin)

    def apart(a: float, b: float) -> bool:
        return length_px * abs(math.log(a / b)) / span >= gap_px

    inner = sorted((t for t in ticks if vmin < t < vmax), reverse=True)
    kept = [vmax]
    for t in inner:
        if apart(kept[-1], t) and apart(t, vmin):
            kept.append(t)
    if apart(vmax, vmin):
        kept.append(vmin)
    return sorted(kept)


def _format_tick(value: float) -> str:
    return f"{value:.3g}"


def _set_ticks(bar, ticks: list[float]) -> None:
    bar.set_ticks(ticks, labels=[_format_tick(t) for t in ticks])
    bar.minorticks_off()


def depth_colorbar(fig, axes=None, *, vmin: float = DEPTH_MIN, vmax: float = DEPTH_MAX, cax=None,
                   label: str = DEPTH_LABEL, fontsize: float | None = None):
    """A colour bar in metres (log scale, near = bright) beside `axes` (or in `cax`), matching
    `depth_to_rgb` over [vmin, vmax]. Returns the matplotlib Colorbar."""
    import matplotlib
    from matplotlib.colors import LogNorm

    mappable = matplotlib.cm.ScalarMappable(norm=LogNorm(vmin, vmax), cmap=DEPTH_CMAP)
    if cax is not None:
        bar = fig.colorbar(mappable, cax=cax)
    else:
        bar = fig.colorbar(mappable, ax=axes, fraction=0.03, pad=0.02)
    _set_ticks(bar, depth_ticks(vmin, vmax))
    if label:
        bar.set_label(label, fontsize=fontsize)
    if fontsize:
        bar.ax.tick_params(labelsize=fontsize)
    return bar


STRIP_WIDTH_PX = 64


@functools.lru_cache(maxsize=64)
def colorbar_strip(height: int, vmin: float = DEPTH_MIN, vmax: float = DEPTH_MAX,
                   width: int = STRIP_WIDTH_PX) -> np.ndarray:
    """A colour bar in metres as a uint8 RGB image [height, width, 3] on white, to put beside
    a depth picture that is no matplotlib figure (the predict preview). Near (vmin) is at the
    bottom and bright; as many tick labels as fit the height. Read-only (it is cached)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = max(int(height), 8), max(int(width), 32)
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    pad = min(8, max(2, height // 12))  # room for half a tick label at both ends
    bar_h = height - 2 * pad
    cax = fig.add_axes((4 / width, pad / height, 10 / width, bar_h / height))
    bar = depth_colorbar(fig, cax=cax, vmin=vmin, vmax=vmax, label="", fontsize=7)
    _set_ticks(bar, _fitting(depth_ticks(vmin, vmax), vmin, vmax, bar_h, 11))
    bar.ax.tick_params(length=2, pad=1)
    bar.outline.set_linewidth(0.5)
    if height >= 96:
        bar.set_label("depth (m)", fontsize=7, labelpad=1)
    else:
        fig.text(1 - 2 / width, 1 - 1 / height, "m", fontsize=7, ha="right", va="top")
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    pixels.setflags(write=False)
    return pixels
