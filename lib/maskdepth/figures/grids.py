"""Grids of ground truth and predictions, built so the pictures can be tested pixel for pixel.

`compose_grid` builds a plain uint8 image whose layout (`GridLayout`) is exact: tiles are the
samples' pixels upscaled by an integer `scale`, separated and framed by a `gutter` of
`GRID_BACKGROUND`. `grid_figure` draws it 1:1 at `DPI` with its top-left pixel at
`GRID_ORIGIN_PX`, plus labels and colour bars. Per block of `per_row` samples the rows are
input, ground truth, prediction and optionally |error|; masks black/white, depth in the one
convention of `maskdepth.figures.depthviz` (near = bright, log scale, fixed range by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.figures.depthviz import DEPTH_CMAP, DEPTH_LABEL, DEPTH_RANGES, auto_range, depth_ticks
from maskdepth.figures.viz import MAX_WIDTH_PX, TITLE_CHAR_PX, new_figure, set_title

TILE_TARGET_PX = 128  # tiles are upscaled by an integer factor to about this size
GUTTER_PX = 4
GRID_BACKGROUND = 128  # grey gutters: visible between black and between white masks
ERROR_CMAP = "Reds"
MASK_THRESHOLD = 0.5
# Figure margins around the grid, in pixels (room for the title, row labels, colour bars).
_TITLE_PX = 64
_BOTTOM_PX = 16
_LABELS_PX = 110
_COLORBAR_PX = 90
GRID_ORIGIN_PX = (_TITLE_PX, _LABELS_PX)


# --------------------------------------------------------------------------- conversions


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def image_to_uint8(image) -> np.ndarray:
    """[3,H,W] or [H,W,3] float in [0,1] -> uint8 [H,W,3] (rounded)."""
    arr = _numpy(image).astype(np.float32)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _plane(x) -> np.ndarray:
    """[1,H,W] / [H,W] -> float [H,W]."""
    arr = _numpy(x).astype(np.float32)
    return arr[0] if arr.ndim == 3 else arr


def mask_to_uint8(mask) -> np.ndarray:
    """A mask or probability map in [0,1] -> grey uint8 [H,W,3] (0 black, 1 white)."""
    return image_to_uint8(_plane(mask))


@dataclass(frozen=True)
class ColorScale:
    """A colour map with its value range; `log` spaces the colours logarithmically."""

    label: str
    cmap: str
    vmin: float
    vmax: float
    log: bool = False

    def norm(self):
        from matplotlib.colors import LogNorm, Normalize

        return LogNorm(self.vmin, self.vmax) if self.log else Normalize(self.vmin, self.vmax)

    def to_uint8(self, values) -> np.ndarray:
        """Values [H,W] (or [1,H,W]) -> uint8 RGB [H,W,3] through the colour map."""
        import matplotlib

        v = np.clip(_plane(values).astype(np.float64), self.vmin, self.vmax)
        t = np.ma.filled(self.norm()(v), np.nan)  # non-finite values: the map's "bad" colour (black)
        rgba = matplotlib.colormaps[self.cmap](t, bytes=True)
        return np.ascontiguousarray(rgba[..., :3])


def depth_scale(*depths, log: bool = True, cmap: str = DEPTH_CMAP, depth_range: str = "fixed") -> ColorScale:
    """One scale for every depth map given (GT and prediction share it), in metres.

    `depth_range` "fixed" (default): [DEPTH_MIN, DEPTH_MAX], the same colours in every
    picture; "auto": the min/max over all maps given, kept inside that range. `log`
    matches the depth parameterisation: near and far depths get equal colour resolution.
    """
    if depth_range not in DEPTH_RANGES:
        raise ValueError(f"depth_range={depth_range!r}: choose one of {', '.join(DEPTH_RANGES)}")
    lo, hi = auto_range(*depths) if depth_range == "auto" else (DEPTH_MIN, DEPTH_MAX)
    return ColorScale(DEPTH_LABEL, cmap, lo, hi, log=log)


def error_scale(errors, label: str, cmap: str = ERROR_CMAP) -> ColorScale:
    """Linear scale from 0 to the largest error shown (at least a tiny positive range)."""
    arr = _numpy(errors)
    finite = arr[np.isfinite(arr)]
    vmax = float(finite.max()) if finite.size else 1.0
    return ColorScale(label, cmap, 0.0, max(vmax, 1e-6))


# --------------------------------------------------------------------------- grid image



@dataclass(frozen=True)
class GridLayout:
    """Exact pixel geometry of a grid image (see the module docstring)."""

    n_rows: int
    n_cols: int
    tile_h: int  # the sample's height before upscaling
    tile_w: int
    scale: int
    gutter: int

    @property
    def cell_h(self) -> int:
        return self.tile_h * self.scale

    @property
    def cell_w(self) -> int:
        return self.tile_w * self.scale

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the grid image in pixels."""
        return (
            self.n_rows * (self.cell_h + self.gutter) + self.gutter,
            self.n_cols * (self.cell_w + self.gutter) + self.gutter,
        )

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of tile (row, col): `grid[y0:y1, x0:x1]` is the upscaled tile."""
        if not (0 <= row < self.n_rows and 0 <= col < self.n_cols):
            raise IndexError(f"tile ({row}, {col}) outside a {self.n_rows}x{self.n_cols} grid")
        y0 = self.gutter + row * (self.cell_h + self.gutter)
        x0 = self.gutter + col * (self.cell_w + self.gutter)
        return y0, y0 + self.cell_h, x0, x0 + self.cell_w

    def center(self, row: int, col: int) -> tuple[float, float]:
        y0, y1, x0, x1 = self.box(row, col)
        return (y0 + y1) / 2, (x0 + x1) / 2


def upscale(tile: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour integer upscaling: every pixel becomes a scale x scale block."""
    return np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)


def compose_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    *,
    scale: int = 1,
    gutter: int = GUTTER_PX,
    background: int = GRID_BACKGROUND,
) -> tuple[np.ndarray, GridLayout]:
    """uint8 RGB tiles [h,w,3] in rows -> one grid image and its layout.

    All tiles share one shape; `None` leaves a cell blank (background), which is how a
    short last block is padded.
    """
    tiles = [t for row in rows for t in row if t is not None]
    if not tiles:
        raise ValueError("compose_grid: no tiles")
    h, w = tiles[0].shape[:2]
    for t in tiles:
        if t.shape != (h, w, 3) or t.dtype != np.uint8:
            raise ValueError(f"compose_grid: tiles must all be uint8 [{h},{w},3], got {t.dtype} {t.shape}")
    layout = GridLayout(len(rows), max(len(r) for r in rows), h, w, int(scale), int(gutter))
    grid = np.full((*layout.shape, 3), background, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile is not None:
                y0, y1, x0, x1 = layout.box(r, c)
                grid[y0:y1, x0:x1] = upscale(tile, layout.scale)
    return grid, layout


def fit_grid(tile_h: int, tile_w: int, n_samples: int, per_row: int, max_width: int = MAX_WIDTH_PX):
    """(scale, columns) so tiles are about TILE_TARGET_PX and the figure fits `max_width`."""
    scale = max(1, TILE_TARGET_PX // max(tile_h, tile_w))
    room = max_width - _LABELS_PX - 2 * _COLORBAR_PX - GUTTER_PX
    fit = max(1, room // (tile_w * scale + GUTTER_PX))
    while fit < min(per_row, 4) and scale > 1:  # shrink tiles before showing fewer than 4 a row
        scale -= 1
        fit = max(1, room // (tile_w * scale + GUTTER_PX))
    return scale, max(1, min(per_row, fit, n_samples))


@dataclass
class Grid:
    """A grid image plus what its figure needs: labels and colour scales."""

    pixels: np.ndarray
    layout: GridLayout
    row_labels: list[str]
    tile_labels: dict[tuple[int, int], str] = field(default_factory=dict)
    scales: list[ColorScale] = field(default_factory=list)


def _blocks(n: int, per_row: int) -> list[range]:
    return [range(s, min(s + per_row, n)) for s in range(0, n, per_row)]


def _block_grid(
    n: int,
    per_row: int,
    row_makers: Sequence[tuple[str, callable]],
    sample_labels: Sequence[str] | None,
    block_names: Sequence[str] | None,
    scales: list[ColorScale],
    max_width: int,
    tile_hw: tuple[int, int],
) -> Grid:
    scale, cols = fit_grid(*tile_hw, n, per_row, max_width)
    rows, labels, tile_labels = [], [], {}
    for b, block in enumerate(_blocks(n, cols)):
        prefix = f"{block_names[b]}\n" if block_names else ""  # own line: keeps labels narrow
        for name, make in row_makers:
            if name == row_makers[0][0] and sample_labels is not None:
                for c, i in enumerate(block):
                    tile_labels[(len(rows), c)] = sample_labels[i]
            rows.append([make(i) for i in block] + [None] * (cols - len(block)))
            labels.append(prefix + name)
    pixels, layout = compose_grid(rows, scale=scale)
    return Grid(pixels, layout, labels, tile_labels, scales)


def mask_grid(
    images,
    gt_masks,
    pred_probs,
    *,
    per_row: int = 8,
    error_row: bool = True,
    threshold: float = MASK_THRESHOLD,
    sample_labels: Sequence[str] | None = None,
    block_names: Sequence[str] | None = None,
    max_width: int = MAX_WIDTH_PX,
) -> Grid:
    """Rows per block: input, GT mask, predicted mask (probability >= threshold, black/white),
    and |probability - GT| (so confident mistakes stand out from hesitant ones)."""
    images, gt, prob = _numpy(images), _numpy(gt_masks), _numpy(pred_probs)
    makers = [
        ("input", lambda i: image_to_uint8(images[i])),
        ("GT mask", lambda i: mask_to_uint8(gt[i])),
        ("pred mask", lambda i: mask_to_uint8(_plane(prob[i]) >= threshold)),
    ]
    scales = []
    if error_row:
        err = np.abs(prob.astype(np.float32) - gt.astype(np.float32))
        err_scale = ColorScale("|p - GT|", ERROR_CMAP, 0.0, 1.0)
        makers.append(("|p - GT|", lambda i: err_scale.to_uint8(err[i])))
        scales.append(err_scale)
    return _block_grid(len(images), per_row, makers, sample_labels, block_names, scales, max_width, gt.shape[-2:])


def depth_grid(
    images,
    gt_depth,
    pred_depth,
    *,
    per_row: int = 8,
    error_row: bool = True,
    log: bool = True,
    depth_range: str = "fixed",
    sample_labels: Sequence[str] | None = None,
    block_names: Sequence[str] | None = None,
    max_width: int = MAX_WIDTH_PX,
) -> Grid:
    """Rows per block: input, GT depth, predicted depth (one shared colour scale, near = bright,
    see `depth_scale` for `depth_range`), |pred - GT| (m)."""
    images, gt, pred = _numpy(images), _numpy(gt_depth), _numpy(pred_depth)
    shared = depth_scale(gt, pred, log=log, depth_range=depth_range)
    makers = [
        ("input", lambda i: image_to_uint8(images[i])),
        ("GT depth", lambda i: shared.to_uint8(gt[i])),
        ("pred depth", lambda i: shared.to_uint8(pred[i])),
    ]
    scales = [shared]
    if error_row:
        err = np.abs(pred.astype(np.float32) - gt.astype(np.float32))
        err_scale = error_scale(err, "|pred - GT| (m)")
        makers.append(("|pred - GT|", lambda i: err_scale.to_uint8(err[i])))
        scales.append(err_scale)
    return _block_grid(len(images), per_row, makers, sample_labels, block_names, scales, max_width, gt.shape[-2:])


def prediction_grid(
    images,
    *,
    gt_mask=None,
    pred_prob=None,
    gt_depth=None,
    pred_depth=None,
    per_row: int = 8,
    threshold: float = MASK_THRESHOLD,
    depth_range: str = "fixed",
    max_width: int = MAX_WIDTH_PX,
) -> Grid:
    """Masks and depth of the same samples in one grid (the TensorBoard image): rows per block
    input, GT mask, pred mask (when masks are given), GT depth, pred depth (when depths are
    given; one shared scale, near = bright, with its colour bar in metres)."""
    images = _numpy(images)
    makers = [("input", lambda i: image_to_uint8(images[i]))]
    scales = []
    if gt_mask is not None and pred_prob is not None:
        gt, prob = _numpy(gt_mask), _numpy(pred_prob)
        makers += [("GT mask", lambda i: mask_to_uint8(gt[i])),
                   ("pred mask", lambda i: mask_to_uint8(_plane(prob[i]) >= threshold))]
    if gt_depth is not None and pred_depth is not None:
        gt_d, pred_d = _numpy(gt_depth), _numpy(pred_depth)
        shared = depth_scale(gt_d, pred_d, depth_range=depth_range)
        makers += [("GT depth", lambda i: shared.to_uint8(gt_d[i])),
                   ("pred depth", lambda i: shared.to_uint8(pred_d[i]))]
        scales.append(shared)
    return _block_grid(len(images), per_row, makers, None, None, scales, max_width, images.shape[-2:])


def grid_figure(grid: Grid, title: str = ""):
    """The grid drawn 1:1 (one image pixel per screen pixel at DPI) with labels and colour bars.

    The grid image's top-left pixel lands at GRID_ORIGIN_PX in the saved PNG. A long title
    widens the figure (up to MAX_WIDTH_PX) and then wraps.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.ticker import FuncFormatter, NullFormatter

    gh, gw = grid.layout.shape
    width = _LABELS_PX + gw + _COLORBAR_PX * len(grid.scales) + 8
    width = max(width, min(MAX_WIDTH_PX, TITLE_CHAR_PX * len(title) + 24))
    height = _TITLE_PX + gh + _BOTTOM_PX
    fig = new_figure(width, height)
    ax = fig.add_axes((_LABELS_PX / width, _BOTTOM_PX / height, gw / width, gh / height))
    ax.imshow(grid.pixels, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([grid.layout.center(r, 0)[0] for r in range(grid.layout.n_rows)], grid.row_labels, fontsize=9)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for (r, c), text in grid.tile_labels.items():
        y0, _, x0, _ = grid.layout.box(r, c)
        ax.text(x0 + 2, y0 + 2, text, fontsize=7, va="top", ha="left", color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "linewidth": 0})
    for k, sc in enumerate(grid.scales):
        left = (_LABELS_PX + gw + 16 + k * _COLORBAR_PX) / width
        cax = fig.add_axes((left, _BOTTOM_PX / height, 14 / width, gh / height))
        bar = fig.colorbar(ScalarMappable(norm=sc.norm(), cmap=sc.cmap), cax=cax)
        if sc.log:  # plain numbers in metres rather than 10^k notation
            bar.set_ticks(depth_ticks(sc.vmin, sc.vmax))  # the same ticks as every depth colour bar
            bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
            bar.ax.yaxis.set_minor_formatter(NullFormatter())
        bar.set_label(sc.label, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        set_title(fig, title, y=1 - 6 / height, va="top")
    return fig



def best_worst_order(values: Sequence[float], k: int, higher_is_better: bool) -> tuple[list[int], list[int]]:
    """Positions of the k worst and the k best samples (NaN values are skipped), worst first."""
    v = np.asarray(values, dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(v))
    order = valid[np.argsort(v[valid], kind="stable")]
    if higher_is_better:
        order = order[::-1]  # best first
    k = min(k, len(order) // 2 if len(order) > 1 else len(order))
    best = [int(i) for i in order[:k]]
    worst = [int(i) for i in order[::-1][:k]]
    return worst, best

