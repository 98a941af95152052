"""`maskdepth validate` on tiny untrained models over the playground stage (a few samples)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from maskdepth.cli import main
from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.dataset import build_dataset
from maskdepth.evaluation.catalogue import MASK_IMAGE_KEYS, MASK_KEYS
from maskdepth.evaluation.loop import load_predictions
from maskdepth.evaluation.metrics import (
    DepthMeter,
    MaskMeter,
    depth_errors_per_sample,
    mask_scores_per_sample,
)
from maskdepth.figures import grids, viz
from maskdepth.models import create_model
from maskdepth.models.checkpoint import save_checkpoint
from maskdepth.validation.readout import figure_paths
from maskdepth.validation.validate import validate

N_SAMPLES, N_SHOW = 6, 4


def _make_run(root, model, task, tasks):
    run = root / "run-1"
    config = {"data": "playground", "size": 64, "seed": 0, "model": model.maskdepth_spec["name"], "task": task,
              "epochs": 2, "input_mode": "fg_bg"}
    save_checkpoint(run / "checkpoints" / "best.pt", model, epoch=2, config=config,
                    info={"task": task, "tasks": tasks, "input_mode": "fg_bg", "input_size": [64, 64]})
    (run / "config.json").write_text(json.dumps(config))
    history = [{"epoch": e, "lr": 1e-3 / e, "train": {"loss": 1.0 / e}, "seen": {"iou": 0.2 * e},
                "unseen": {"iou": 0.1 * e}} for e in (1, 2)]
    (run / "history.json").write_text(json.dumps({"epochs": history}))
    return run


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("joint", encoder="lean", context=False, base_channels=4).eval()
    return _make_run(tmp_path_factory.mktemp("runs"), model, "joint", ["mask", "depth"]), model


@pytest.fixture(scope="module")
def validated(joint_run):
    run, _ = joint_run
    return validate(run, split="unseen", n_samples=N_SAMPLES, n_show=N_SHOW, batch_size=4, device="cpu",
                    progress_bar=False)


@pytest.fixture(scope="module")
def dataset():
    return build_dataset("playground", "unseen", size=64, seed=0)


def test_defaults_come_from_the_checkpoint_and_run(validated, joint_run):
    run, _ = joint_run
    out = run / "validation" / "unseen"
    assert validated["out_dir"] == str(out)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(validated))
    assert (validated["data"], validated["size"], validated["split"], validated["epoch"]) == ("playground", 64, "unseen", 2)
    assert validated["run"] == str(run.resolve()) and validated["n_samples"] == N_SAMPLES
    assert [r["index"] for r in validated["per_sample"]] == list(range(N_SAMPLES))
    assert sorted(validated["figures"]) == sorted([
        "mask_grid.png", "depth_grid.png", "best_worst_iou.png", "best_worst_abs_rel.png", "histograms.png",
        "training_curves.png"])
    for name in validated["figures"]:
        width, height = Image.open(out / name).size
        assert 200 < width <= viz.MAX_WIDTH_PX and height > 200
    assert [p.name for p in figure_paths(validated, "mask")] == ["mask_grid.png", "best_worst_iou.png"]


def test_metrics_json_matches_a_recomputation_from_the_saved_predictions(validated):
    arrays = load_predictions(f"{validated['out_dir']}/predictions.npz")
    assert arrays["mask_logits"].shape == arrays["depth"].shape == (N_SAMPLES, 1, 64, 64)
    logits, gt_mask = torch.from_numpy(arrays["mask_logits"]), torch.from_numpy(arrays["gt_mask"]).float()
    depth, gt_depth = torch.from_numpy(arrays["depth"]), torch.from_numpy(arrays["gt_depth"])
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    for i in range(0, N_SAMPLES, 4):  # any batching gives the same dataset-wide sums
        mask_meter.update(logits[i:i + 4], gt_mask[i:i + 4])
        depth_meter.update(depth[i:i + 4], gt_depth[i:i + 4], mask=gt_mask[i:i + 4])
    expected = {**mask_meter.compute(), **depth_meter.compute()}
    assert set(validated["overall"]) == set(expected)
    assert {"miou", "iou_small", "sa_delta1", "obj_abs_rel", "ordering", "ordering_n"} <= set(expected)
    for key, value in expected.items():
        if math.isnan(value):  # e.g. an object-size bin without images: null in the JSON file
            assert validated["overall"][key] is None, key
        else:
            assert validated["overall"][key] == pytest.approx(value, rel=1e-9), key
    # IoU by hand, over all pixels of the split (not a mean of per-image IoUs)
    pred, truth = arrays["mask_logits"] > 0, arrays["gt_mask"] > 0
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert validated["overall"]["iou"] == pytest.approx(iou, rel=1e-12)
    per_mask = mask_scores_per_sample(logits, gt_mask)
    per_depth = depth_errors_per_sample(depth, gt_depth, mask=gt_mask)
    for i, record in enumerate(validated["per_sample"]):
        for key in ("iou", "dice", "pixel_acc"):
            assert record[key] == pytest.approx(float(per_mask[key][i]), rel=1e-12)
        for key in ("abs_rel", "rmse", "delta1", "rmse_over_std", "sa_abs_rel", "sa_delta1", "obj_abs_rel", "ordering"):
            want = float(per_depth[key][i])
            assert record[key] == (None if math.isnan(want) else pytest.approx(want, rel=1e-12)), key
    assert validated["overall"]["miou"] == pytest.approx(np.mean([r["iou"] for r in validated["per_sample"]]))


def test_saved_predictions_are_the_models_outputs_on_the_dataset(validated, joint_run, dataset):
    _, model = joint_run
    arrays = load_predictions(f"{validated['out_dir']}/predictions.npz")
    samples = [dataset[i] for i in range(N_SAMPLES)]
    np.testing.assert_array_equal(arrays["gt_mask"], np.stack([s["mask"].numpy() for s in samples]).astype(np.uint8))
    np.testing.assert_array_equal(arrays["gt_depth"], np.stack([s["depth"].numpy() for s in samples]))
    with torch.no_grad():
        out = model(torch.stack([s["image"] for s in samples]))
    np.testing.assert_allclose(arrays["mask_logits"], out["mask"].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(arrays["depth"], out["depth"].numpy(), rtol=1e-4, atol=1e-5)


def _tile(png, layout, row, col):
    top, left = grids.GRID_ORIGIN_PX
    y0, y1, x0, x1 = layout.box(row, col)
    return png[top + y0:top + y1, left + x0:left + x1]


def test_grid_pngs_reproduce_the_dataset_images(validated, dataset):
    out = validated["out_dir"]
    scale = grids.TILE_TARGET_PX // 64
    layout = grids.GridLayout(n_rows=4, n_cols=N_SHOW, tile_h=64, tile_w=64, scale=scale, gutter=grids.GUTTER_PX)
    mask_png = np.asarray(Image.open(f"{out}/mask_grid.png").convert("RGB"))
    depth_png = np.asarray(Image.open(f"{out}/depth_grid.png").convert("RGB"))
    top, left = grids.GRID_ORIGIN_PX
    gh, gw = layout.shape
    assert mask_png.shape[0] >= top + gh and mask_png.shape[1] >= left + gw
    arrays = load_predictions(f"{out}/predictions.npz")
    shared = grids.depth_scale(arrays["depth"][:N_SHOW], arrays["gt_depth"][:N_SHOW])
    covered = np.zeros((gh, gw), dtype=bool)
    for col in range(N_SHOW):
        sample = dataset[col]
        image = np.rint(sample["image"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        half = 64 * scale // 2  # the bottom half of input tiles is free of the "#index" label
        np.testing.assert_array_equal(_tile(mask_png, layout, 0, col)[half:], np.kron(image, np.ones((scale, scale, 1)))[half:])
        gt_bw = np.repeat(sample["mask"].numpy()[0, :, :, None] * 255, 3, axis=2).astype(np.uint8)
        np.testing.assert_array_equal(_tile(mask_png, layout, 1, col), np.kron(gt_bw, np.ones((scale, scale, 1))))
        gt_colour = shared.to_uint8(sample["depth"].numpy())
        np.testing.assert_array_equal(_tile(depth_png, layout, 1, col), np.kron(gt_colour, np.ones((scale, scale, 1))))
        pred_bw = (arrays["mask_logits"][col, 0] > 0)[:, :, None].repeat(3, axis=2).astype(np.uint8) * 255
        np.testing.assert_array_equal(_tile(mask_png, layout, 2, col), np.kron(pred_bw, np.ones((scale, scale, 1))))
        for row in range(4):
            y0, y1, x0, x1 = layout.box(row, col)
            covered[y0:y1, x0:x1] = True
    gutters = mask_png[top:top + gh, left:left + gw][~covered]
    assert (gutters == grids.GRID_BACKGROUND).all()


def test_single_task_model_gets_only_its_metrics_and_figures(tmp_path):
    torch.manual_seed(1)
    run = _make_run(tmp_path, create_model("lean_unet", task="mask"), "mask", ["mask"])
    metrics = validate(run / "checkpoints" / "best.pt", split="seen", n_samples=2, n_show=2, device="cpu",
                       save_predictions=False, progress_bar=False)
    assert set(metrics["overall"]) == {*MASK_KEYS, *MASK_IMAGE_KEYS}
    assert set(metrics["per_sample"][0]) == {"index", "iou", "dice", "pixel_acc"}
    assert "depth_grid.png" not in metrics["figures"] and "mask_grid.png" in metrics["figures"]
    assert metrics["predictions"] is None and not (run / "validation" / "seen" / "predictions.npz").exists()


def test_cli_validate_end_to_end(joint_run, tmp_path, capsys):
    run, _ = joint_run
    out = tmp_path / "val"
    code = main(["validate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--stage", "playground",
                 "--split", "seen", "--n-samples", "3", "--n-show", "3", "--out", str(out), "--device", "cpu"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["split"], metrics["n_samples"], len(metrics["per_sample"])) == ("seen", 3, 3)
    assert 0 <= metrics["overall"]["iou"] <= 1 and metrics["overall"]["abs_rel"] > 0
    printed = capsys.readouterr().out
    assert printed.startswith("seen (3 samples): IoU ")
    assert f"wrote {out / 'mask_grid.png'}" in printed and (out / "mask_grid.png").is_file()


def test_cli_validate_ood_split(joint_run, tmp_path, capsys):
    run, _ = joint_run
    out = tmp_path / "ood"
    assert main(["validate", "--checkpoint", str(run), "--split", "ood", "--n-samples", "2", "--out", str(out),
                 "--device", "cpu", "--no-figures"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["split"], metrics["n_samples"]) == ("ood", 2)
    assert "sa_delta1" in metrics["overall"] and "ordering" in metrics["overall"]
    assert capsys.readouterr().out.startswith("ood (2 samples): IoU ")


def test_a_split_without_samples_is_reported_not_an_error(joint_run, tmp_path, capsys):
    from maskdepth.datasets.dataset import open_split
    from maskdepth.validation.readout import summary_line, summary_markdown

    folder = tmp_path / "imported"  # a dataset folder from before the ood split: no ood count at all
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({"format": "maskdepth-dataset/1", "layout": "packed", "size": 64,
                                                    "counts": {"train": 3, "seen": 1, "unseen": 1}}))
    assert open_split(str(folder), "ood", 64, 0) is None
    run, _ = joint_run
    metrics = validate(run, data=str(folder), split="ood", out_dir=tmp_path / "v", device="cpu", progress_bar=False)
    assert metrics["n_samples"] == 0 and metrics["note"] == f"no ood samples in {folder}"
    assert metrics["overall"] == {} and metrics["figures"] == [] and metrics["predictions"] is None
    assert json.loads((tmp_path / "v" / "metrics.json").read_text()) == metrics
    assert metrics["tta"] == "none"  # the recipe's mode (its config sets none), not null
    flipped = validate(run, data=str(folder), split="ood", out_dir=tmp_path / "f", device="cpu", tta="flip")
    assert flipped["tta"] == "flip"
    with pytest.raises(MaskdepthError, match="tta='sideways'"):
        validate(run, data=str(folder), split="ood", out_dir=tmp_path / "b", device="cpu", tta="sideways")
    assert figure_paths(metrics, "mask") == []
    assert summary_line(metrics) == f"ood: no ood samples in {folder} (skipped)"
    assert "nothing to score" in summary_markdown(metrics)
    assert main(["validate", "--checkpoint", str(run), "--data", str(folder), "--split", "ood",
                 "--out", str(tmp_path / "cli"), "--device", "cpu"]) == 0
    assert "no ood samples" in capsys.readouterr().out


def test_bad_inputs_fail_naming_the_argument(joint_run, tmp_path, capsys):
    run, _ = joint_run
    with pytest.raises(MaskdepthError, match="nope.pt: no such file"):
        validate(tmp_path / "nope.pt")
    with pytest.raises(MaskdepthError, match="split='val'"):
        validate(run, split="val")
    with pytest.raises(MaskdepthError, match="without checkpoints/best.pt"):
        validate(tmp_path)
    assert main(["validate", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
