"""One depth convention in every picture: near = bright, log scale over [DEPTH_MIN, DEPTH_MAX],
a colour bar in metres. Each figure type is rendered from a synthetic depth ramp (near on the
left, far on the right) and its pixels are checked: the near end is brighter than the far end."""

from __future__ import annotations

import io
import json
import types
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.figures import depthviz, grids, viz

NEAR, FAR = 0.3, 60.0


def _ramp(h: int = 16, w: int = 24, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """Depth [h, w] in metres growing log-uniformly from `near` (left) to `far` (right)."""
    row = np.exp(np.linspace(np.log(near), np.log(far), w))
    return np.repeat(row[None], h, axis=0).astype(np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64)[..., :3] @ np.array([0.299, 0.587, 0.114])


def _assert_near_is_bright(pixels: np.ndarray, what: str) -> None:
    """A rendered ramp: the left (near) quarter is much brighter than the right (far) quarter,
    and brightness falls from left to right."""
    luma = _luma(pixels).mean(axis=0)
    quarter = max(1, luma.size // 4)
    near, far = luma[:quarter].mean(), luma[-quarter:].mean()
    assert near > far + 100, f"{what}: near {near:.0f} is not brighter than far {far:.0f}"
    assert np.all(np.diff(luma) <= 2.0), f"{what}: brightness does not fall with depth"


def _rendered_axes(fig, ax) -> np.ndarray:
    """The pixels of `ax` in the figure as rendered (RGB), from its window extent."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    box = ax.get_window_extent()
    height = rgba.shape[0]
    y0, y1 = int(np.ceil(height - box.y1)), int(np.floor(height - box.y0))
    x0, x1 = int(np.ceil(box.x0)), int(np.floor(box.x1))
    return rgba[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2, :3]


def test_colours_are_near_bright_log_scaled_and_fixed():
    ramp = _ramp()
    rgb8 = depthviz.depth_to_uint8(ramp)
    _assert_near_is_bright(rgb8, "depth_to_uint8")
    np.testing.assert_allclose(depthviz.depth_to_rgb(ramp) * 255, rgb8, atol=1.0)
    cmap = matplotlib.colormaps[depthviz.DEPTH_CMAP]
    ends = depthviz.depth_to_uint8(np.array([[DEPTH_MIN, DEPTH_MAX, 0.01, 500.0, np.nan]]))[0]
    assert tuple(ends[0]) == tuple(cmap(0.0, bytes=True)[:3])  # the near end of the fixed range
    assert tuple(ends[1]) == tuple(cmap(1.0, bytes=True)[:3])  # the far end
    assert tuple(ends[2]) == tuple(ends[0]) and tuple(ends[3]) == tuple(ends[1])  # clipped to the range
    assert tuple(ends[4]) == (0, 0, 0)  # no depth: black
    # log scale: equal ratios get equal colour steps (1 m -> 2 m as far apart as 10 m -> 20 m)
    t = depthviz._position(np.array([1.0, 2.0, 10.0, 20.0]), DEPTH_MIN, DEPTH_MAX)
    assert t[1] - t[0] == pytest.approx(t[3] - t[2])
    # per-image range: the image's own min..max spans the whole map
    lo, hi = depthviz.auto_range(ramp)
    assert (lo, hi) == (pytest.approx(NEAR, rel=1e-5), pytest.approx(FAR, rel=1e-5))
    auto = depthviz.depth_to_uint8(ramp, lo, hi)
    assert tuple(auto[0, 0]) == tuple(cmap(0.0, bytes=True)[:3])
    assert depthviz.auto_range(np.full((4, 4), 3.0))[0] < 3.0 < depthviz.auto_range(np.full((4, 4), 3.0))[1]


def test_the_helpers_have_one_home():
    from maskdepth.figures import preview

    assert preview.depth_to_rgb is depthviz.depth_to_rgb
    assert preview.depth_colorbar is depthviz.depth_colorbar
    assert grids.DEPTH_CMAP == depthviz.DEPTH_CMAP == "magma_r"


class _Samples(torch.utils.data.Dataset):
    """A folder-like dataset (no `composer`) whose depth is the ramp."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        h, w = 16, 24
        return {"image": torch.rand(3, h, w), "bg": torch.rand(3, h, w), "mask": torch.zeros(1, h, w),
                "depth": torch.from_numpy(_ramp(h, w))[None], "index": i}


def test_data_preview_grid_is_near_bright_with_a_colour_bar_in_metres():
    import matplotlib.pyplot as plt

    from maskdepth.figures.preview import sample_grid

    fig = sample_grid(_Samples(), [0, 1])
    try:
        depth_ax = next(ax for ax in fig.axes if ax.get_title() == "depth")
        _assert_near_is_bright(_rendered_axes(fig, depth_ax), "data preview")
        bar = next(ax for ax in fig.axes if ax.get_ylabel() == depthviz.DEPTH_LABEL)
        labels = [t.get_text() for t in bar.get_yticklabels()]
        assert "0.25" in labels and "80" in labels
    finally:
        plt.close(fig)


def _png(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=viz.DPI)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _tile(png: np.ndarray, layout, row: int, col: int) -> np.ndarray:
    top, left = grids.GRID_ORIGIN_PX
    y0, y1, x0, x1 = layout.box(row, col)
    return png[top + y0 : top + y1, left + x0 : left + x1]


def test_validation_grid_is_near_bright_with_a_colour_bar_in_metres(tmp_path):
    n = 2
    images = np.random.default_rng(0).random((n, 3, 16, 24), dtype=np.float32)
    depth = np.stack([_ramp()[None]] * n)
    grid = grids.depth_grid(images, depth, depth * 1.1)
    fig = grids.grid_figure(grid, "validation")
    viz.save_figure(fig, tmp_path / "depth_grid.png")
    png = np.asarray(Image.open(tmp_path / "depth_grid.png").convert("RGB"))
    for row in (1, 2):  # GT depth, predicted depth
        _assert_near_is_bright(_tile(png, grid.layout, row, 0), f"validation grid row {row}")
    bar = next(ax for ax in fig.axes if ax.get_ylabel() == depthviz.DEPTH_LABEL)
    assert bar.get_ylim() == (pytest.approx(DEPTH_MIN), pytest.approx(DEPTH_MAX))  # the fixed range
    assert {"0.25", "1", "10", "80"} <= {t.get_text() for t in bar.get_yticklabels()}


def _prediction_inputs(n: int = 3):
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.random((n, 3, 16, 24), dtype=np.float32))
    masks = torch.from_numpy((rng.random((n, 1, 16, 24)) > 0.5).astype(np.float32))
    depth = torch.from_numpy(np.stack([_ramp()[None]] * n))
    return images, masks, depth


def test_tensorboard_grid_is_near_bright_with_a_colour_bar():
    """`RunLog.write_grid` (the trainer's TensorBoard grid) with a stand-in model: the image sent
    to TensorBoard is the validation-grid figure, its depth rows near = bright on the fixed scale."""
    from maskdepth.training.runlog import RunLog

    images, masks, depth = _prediction_inputs()

    class Dataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return {"image": images[i], "bg": images[i], "mask": masks[i], "depth": depth[i], "index": i}

    class Stub(torch.nn.Module):
        def forward(self, x):
            return {"mask": torch.zeros(x.shape[0], 1, *x.shape[-2:]), "depth": depth[: x.shape[0]] * 1.2}

    logged = []
    writer = types.SimpleNamespace(add_image=lambda *a, **k: logged.append((a, k)))
    runlog = RunLog(Path("unused"), types.SimpleNamespace(), is_main=True)
    runlog.writer = writer
    runlog.write_grid(3, Stub(), {"unseen": Dataset()}, torch.device("cpu"), 3)
    ((tag, image, step), kwargs), = logged
    assert (tag, step, kwargs) == ("val_unseen/grid", 3, {"dataformats": "HWC"})
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    grid = grids.prediction_grid(images, gt_mask=masks, pred_prob=torch.zeros_like(masks), gt_depth=depth,
                               pred_depth=depth * 1.2, per_row=len(images))
    assert grid.row_labels == ["input", "GT mask", "pred mask", "GT depth", "pred depth"]
    gh, gw = grid.layout.shape
    assert image.shape[1] > grids.GRID_ORIGIN_PX[1] + gw  # room for the colour bar beside the grid
    for row in (3, 4):
        for col in range(len(images)):
            _assert_near_is_bright(_tile(image, grid.layout, row, col), f"TensorBoard row {row}")
    np.testing.assert_array_equal(_tile(image, grid.layout, 0, 0)[:, :, :],
                                  np.kron(grids.image_to_uint8(images[0]), np.ones((grid.layout.scale,) * 2 + (1,),
                                                                                 np.uint8)))


def test_predict_preview_is_near_bright_with_a_colour_bar_strip():
    from maskdepth.prediction.preview import preview_image

    h, w = 40, 60
    image = np.full((h, w, 3), 90, np.uint8)
    result = {"mask": np.zeros((h, w), bool), "depth": _ramp(h, w)}
    fixed = preview_image(image, result)
    assert fixed.shape == (h, 3 * w + depthviz.STRIP_WIDTH_PX, 3)
    _assert_near_is_bright(fixed[:, 2 * w : 3 * w], "preview depth panel")
    np.testing.assert_array_equal(fixed[:, 2 * w : 3 * w], depthviz.depth_to_uint8(result["depth"]))
    strip = fixed[:, 3 * w :]
    bar = strip[4:-4, 5:13]  # the bar itself: near (bottom) bright, far (top) dark
    assert _luma(bar[-3:]).mean() > _luma(bar[:3]).mean() + 100
    auto = preview_image(image, result, depthviz.auto_range(result["depth"]))
    cmap = matplotlib.colormaps[depthviz.DEPTH_CMAP]
    assert tuple(auto[0, 2 * w]) == tuple(cmap(0.0, bytes=True)[:3])  # own range: the nearest is the brightest
    assert tuple(fixed[0, 2 * w]) != tuple(cmap(0.0, bytes=True)[:3])  # 0.3 m is not the fixed range's end
    assert not np.array_equal(auto[:, 3 * w :], strip)  # its bar is labelled with its own range


def test_colour_bar_strip_fits_small_and_large_heights():
    for height in (12, 37, 120, 700):
        strip = depthviz.colorbar_strip(height)
        assert strip.shape == (max(height, 8), depthviz.STRIP_WIDTH_PX, 3) and strip.dtype == np.uint8
        assert not strip.flags.writeable
    ticks = depthviz._fitting(list(depthviz.DEPTH_TICKS), DEPTH_MIN, DEPTH_MAX, 25, 11)
    assert ticks[0] == DEPTH_MIN and ticks[-1] == DEPTH_MAX and len(ticks) <= 3
    assert depthviz.depth_ticks() == [0.25, 0.5, 1, 2, 5, 10, 20, 40, 80]
    assert json.dumps(depthviz.depth_ticks(1.3, 7.0)) == "[1.3, 2, 5, 7.0]"


def test_a_training_run_logs_the_depth_grid_and_its_hparams(tmp_path):
    """A real (tiny) run: TensorBoard holds the colour-mapped grid image and, in the HParams
    tab, the run's hyperparameters with its final metrics."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from maskdepth.training.config import TrainConfig
    from maskdepth.training.trainer import train

    cfg = TrainConfig.from_mapping({
        "data": "playground", "size": 32, "batch_size": 8, "val_batch_size": 16, "epochs": 1, "progress_bar": False,
        "model_kwargs": {"encoder": "lean", "context": False, "base_channels": 8}, "tensorboard": True, "grid_every": 1, "lr": 1e-3,
        "out_dir": str(tmp_path / "run"),
    })
    metrics = train(cfg)
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    (image,) = events.Images("val_unseen/grid")
    png = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    cmap = matplotlib.colormaps[depthviz.DEPTH_CMAP]
    colours = {tuple(cmap(t, bytes=True)[:3]) for t in np.linspace(0, 1, 256)}
    mapped = np.array([tuple(p) in colours for p in png.reshape(-1, 3)[:: 7]])
    assert mapped.mean() > 0.1  # depth drawn through the colour map, not as grey levels
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == pytest.approx(1e-3) and hparams["model"].string_value == "joint"
    assert json.loads(hparams["model_kwargs"].string_value) == {"encoder": "lean", "context": False, "base_channels": 8}
    assert "out_dir" not in hparams
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    names = {m.name.tag for m in experiment.metric_infos}
    assert {"hparam/seen.iou", "hparam/unseen.abs_rel", "hparam/ood.delta1", "hparam/best_epoch"} <= names
    (value,) = events.Scalars("hparam/seen.iou")
    assert value.value == pytest.approx(metrics["seen"]["iou"], rel=1e-6)


def test_the_family_figure_shows_every_family_and_its_object(tmp_path):
    """One panel pair per scene and object family, each with its labelled object in view (a placement
    that hides it behind clutter or the frame's edge gives way to the next)."""
    import matplotlib.pyplot as plt

    from maskdepth.figures.preview import MIN_SHOWN, family_examples, family_grid, shown_sample
    from maskdepth.world import backgrounds, foregrounds
    from maskdepth.world.sources import SourceSpec

    spec = SourceSpec()
    examples = family_examples(spec)
    labels = [label for label, *_ in examples]
    assert len(labels) == len(backgrounds.FAMILIES) + len(foregrounds.FAMILIES)
    assert {"object: stool", "object: sign", "object: lamp (ood)", "scene: shelf (ood)"} <= set(labels)
    for label, bg, fg, placement in examples:
        assert shown_sample(spec, bg, fg, placement, 48, cache_dir=tmp_path)["mask"].mean() >= MIN_SHOWN, label
    fig = family_grid(spec, size=48, cache_dir=tmp_path)
    try:
        assert {ax.get_title() for ax in fig.axes} >= set(labels)
    finally:
        plt.close(fig)
