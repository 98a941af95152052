"""Grids are checked pixel for pixel against their documented layout; figures for size and content."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.figures import grids, viz
from maskdepth.figures.depthviz import DEPTH_LABEL


def _tiles(rng, n, h, w):
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _kron(tile, s):
    return np.kron(tile, np.ones((s, s, 1), dtype=np.uint8))


def _samples(n=5, h=16, w=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, h, w), dtype=np.float32)
    masks = (rng.random((n, 1, h, w)) > 0.5).astype(np.float32)
    probs = rng.random((n, 1, h, w), dtype=np.float32)
    depth = np.exp(rng.uniform(np.log(0.5), np.log(40.0), (n, 1, h, w))).astype(np.float32)
    return images, masks, probs, depth


def test_compose_grid_layout_is_exact():
    rng = np.random.default_rng(1)
    rows = [_tiles(rng, 3, 5, 7), _tiles(rng, 2, 5, 7) + [None]]
    grid, layout = grids.compose_grid(rows, scale=3, gutter=2, background=255)
    # 2 rows of 5*3 px plus 3 gutters; 3 columns of 7*3 px plus 4 gutters.
    assert grid.shape == (2 * 15 + 3 * 2, 3 * 21 + 4 * 2, 3)
    assert layout.box(1, 2) == (2 + 17, 2 + 17 + 15, 2 + 2 * 23, 2 + 2 * 23 + 21)
    covered = np.zeros(grid.shape[:2], dtype=bool)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y0, y1, x0, x1 = layout.box(r, c)
            if tile is not None:
                np.testing.assert_array_equal(grid[y0:y1, x0:x1], _kron(tile, 3))
                covered[y0:y1, x0:x1] = True
    assert (grid[~covered] == 255).all()  # gutters and the empty cell are background
    with pytest.raises(IndexError):
        layout.box(2, 0)


def test_compose_grid_rejects_mixed_tiles():
    with pytest.raises(ValueError, match="uint8"):
        grids.compose_grid([[np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)]])


def test_mask_grid_rows_reproduce_inputs_masks_and_thresholded_predictions():
    images, masks, probs, _ = _samples(n=5)
    g = grids.mask_grid(images, masks, probs, per_row=3, sample_labels=[f"#{i}" for i in range(5)])
    s = g.layout.scale
    assert s == 128 // 16  # tiles upscaled by an integer factor to about 128 px
    assert (g.layout.n_rows, g.layout.n_cols) == (8, 3)  # 2 blocks x (input, GT, pred, error)
    assert g.row_labels == ["input", "GT mask", "pred mask", "|p - GT|"] * 2
    assert g.pixels.shape[:2] == g.layout.shape
    for i in range(5):
        block, col = divmod(i, 3)

        def tile(row, block=block, col=col):
            y0, y1, x0, x1 = g.layout.box(4 * block + row, col)
            return g.pixels[y0:y1, x0:x1]

        expected_image = np.rint(images[i].transpose(1, 2, 0) * 255).astype(np.uint8)
        np.testing.assert_array_equal(tile(0), _kron(expected_image, s))
        gt_bw = np.repeat(masks[i, 0, :, :, None] * 255, 3, axis=2).astype(np.uint8)
        np.testing.assert_array_equal(tile(1), _kron(gt_bw, s))
        pred_bw = np.repeat((probs[i, 0, :, :, None] >= 0.5) * 255, 3, axis=2).astype(np.uint8)
        np.testing.assert_array_equal(tile(2), _kron(pred_bw, s))
    # the short last block leaves its third column blank
    y0, y1, x0, x1 = g.layout.box(4, 2)
    assert (g.pixels[y0:y1, x0:x1] == grids.GRID_BACKGROUND).all()
    assert g.tile_labels[(4, 1)] == "#4"
    no_err = grids.mask_grid(images, masks, probs, per_row=8, error_row=False)
    assert no_err.row_labels == ["input", "GT mask", "pred mask"]
    assert no_err.scales == []


def test_depth_grid_uses_one_scale_for_gt_and_prediction():
    images, _, _, depth = _samples(n=4)
    pred = depth * 1.5  # extends beyond the GT range: the shared scale must cover it
    fixed = grids.depth_grid(images, depth, pred, per_row=4)
    assert fixed.row_labels == ["input", "GT depth", "pred depth", "|pred - GT|"]
    # by default the fixed documented range, the same in every grid, so grids compare
    assert (fixed.scales[0].vmin, fixed.scales[0].vmax) == (DEPTH_MIN, DEPTH_MAX)
    assert grids.depth_scale(depth).vmax == DEPTH_MAX
    g = grids.depth_grid(images, depth, pred, per_row=4, depth_range="auto")
    shared, err = g.scales
    assert shared.vmin == pytest.approx(float(depth.min()))
    assert shared.vmax == pytest.approx(float(pred.max()))
    assert shared.log and shared.cmap == grids.DEPTH_CMAP == "magma_r"  # near = bright
    assert err.vmin == 0 and err.vmax == pytest.approx(float(np.abs(pred - depth).max()))
    cmap = matplotlib.colormaps[grids.DEPTH_CMAP]
    s = g.layout.scale
    # the nearest pixel anywhere gets the colour map's first (brightest) colour, the farthest its last
    i_min = np.unravel_index(np.argmin(depth), depth.shape)
    y0, _, x0, _ = g.layout.box(1, i_min[0])
    assert tuple(g.pixels[y0 + i_min[2] * s, x0 + i_min[3] * s]) == tuple(cmap(0.0, bytes=True)[:3])
    i_max = np.unravel_index(np.argmax(pred), pred.shape)
    y0, _, x0, _ = g.layout.box(2, i_max[0])
    assert tuple(g.pixels[y0 + i_max[2] * s, x0 + i_max[3] * s]) == tuple(cmap(1.0, bytes=True)[:3])
    # a perfect prediction renders exactly like its ground truth
    same = grids.depth_grid(images, depth, depth.copy(), per_row=4)
    for c in range(4):
        gy0, gy1, gx0, gx1 = same.layout.box(1, c)
        py0, py1, px0, px1 = same.layout.box(2, c)
        np.testing.assert_array_equal(same.pixels[gy0:gy1, gx0:gx1], same.pixels[py0:py1, px0:px1])


def test_large_images_fit_a_laptop_screen(tmp_path):
    images, masks, probs, _ = _samples(n=8, h=256, w=256)
    g = grids.mask_grid(images, masks, probs, per_row=8)
    assert g.layout.scale == 1
    fig = grids.grid_figure(g, "run · best.pt · unseen · IoU 0.5")
    viz.save_figure(fig, tmp_path / "g.png")
    width, height = Image.open(tmp_path / "g.png").size
    assert width <= viz.MAX_WIDTH_PX
    assert width >= g.layout.shape[1] and height >= g.layout.shape[0]  # drawn 1:1, not shrunk


def test_grid_figure_has_title_and_colour_bars(tmp_path):
    images, _, _, depth = _samples(n=3)
    g = grids.depth_grid(images, depth, depth * 0.9)
    fig = grids.grid_figure(g, "my-run · best.pt · seen · AbsRel 0.100")
    assert fig._suptitle.get_text() == "my-run · best.pt · seen · AbsRel 0.100"
    assert len(fig.axes) == 3  # grid + depth colour bar + error colour bar
    assert [a.get_ylabel() for a in fig.axes[1:]] == [DEPTH_LABEL, "|pred - GT| (m)"]
    viz.save_figure(fig, tmp_path / "d.png")
    png = Image.open(tmp_path / "d.png")
    assert png.format == "PNG"
    # the grid is drawn 1:1: the PNG holds its exact pixels at GRID_ORIGIN_PX
    top, left = grids.GRID_ORIGIN_PX
    gh, gw = g.layout.shape
    np.testing.assert_array_equal(np.asarray(png.convert("RGB"))[top:top + gh, left:left + gw], g.pixels)


def test_best_worst_order_skips_nan_and_respects_direction():
    values = [0.5, 0.9, float("nan"), 0.1, 0.7]
    assert grids.best_worst_order(values, 2, higher_is_better=True) == ([3, 0], [1, 4])
    assert grids.best_worst_order(values, 2, higher_is_better=False) == ([1, 4], [3, 0])
    worst, best = grids.best_worst_order(values, 10, higher_is_better=True)  # never overlapping
    assert len(worst) == len(best) == 2 and not set(worst) & set(best)


def test_training_curves_put_lr_on_a_second_axis(tmp_path):
    history = {"epochs": [
        {"epoch": e, "lr": 0.01 * 0.5**e, "train": {"loss": 2.0 / e, "mask": 1.0 / e, "depth": 1.0 / e},
         "seen": {"loss": 2.5 / e, "iou": 0.1 * e, "abs_rel": 0.5 / e},
         "unseen": {"loss": 3.0 / e, "iou": 0.08 * e, "abs_rel": 0.6 / e},
         "ood": {"loss": 4.0 / e, "iou": 0.05 * e, "sa_delta1": 0.1 * e, "ordering": None}}
        for e in range(1, 6)
    ]}
    fig = viz.training_curves_figure(history, "curves")
    loss_ax = next(a for a in fig.axes if a.get_title() == "losses")
    assert {line.get_label() for line in loss_ax.lines} == {
        "train loss", "train mask", "train depth", "seen loss", "unseen loss", "ood loss"}
    lr_ax = next(a for a in fig.axes if a.get_ylabel() == "learning rate")
    assert lr_ax is not loss_ax and lr_ax.get_shared_x_axes().joined(lr_ax, loss_ax)  # a twin of the loss axis
    np.testing.assert_allclose(lr_ax.lines[0].get_ydata(), [0.01 * 0.5**e for e in range(1, 6)])
    higher = next(a for a in fig.axes if a.get_title() == "higher is better")
    np.testing.assert_allclose(
        next(ln for ln in higher.lines if ln.get_label() == "unseen iou").get_ydata(), [0.08 * e for e in range(1, 6)])
    ood_iou = next(ln for ln in higher.lines if ln.get_label() == "ood iou")
    assert ood_iou.get_linestyle() == ":"
    assert "ood sa_delta1" in {ln.get_label() for ln in higher.lines}
    assert "ood ordering" not in {ln.get_label() for ln in higher.lines}  # no values: no line
    lower = next(a for a in fig.axes if a.get_title() == "lower is better")
    assert {ln.get_label() for ln in lower.lines} == {"seen abs_rel", "unseen abs_rel"}
    viz.save_figure(fig, tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size[0] <= viz.MAX_WIDTH_PX


def test_histogram_counts_every_finite_value():
    rng = np.random.default_rng(3)
    iou = rng.random(37)
    abs_rel = np.append(rng.random(20), np.nan)
    fig = viz.histogram_figure({"iou": iou, "abs_rel": abs_rel}, bins=10)
    counts = [sum(p.get_height() for p in ax.patches) for ax in fig.axes]
    assert counts == [37, 20]
