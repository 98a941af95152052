"""The real-photo check: measured depth from disparity, pairwise ordering, scores beside
baselines, the command, the notebook's files and the run page."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from maskdepth.cli import main
from maskdepth.datasets.measured import disparity_to_depth, motorcycle
from maskdepth.evaluation.metrics import depth_relief, pairwise_ordering
from maskdepth.models import create_model
from maskdepth.models.checkpoint import save_checkpoint
from maskdepth.validation.realcheck import (
    REAL_JSON,
    depth_scores,
    ramp,
    real_check,
    summary_markdown,
    table_rows,
)

pytest.importorskip("skimage.data", reason="scikit-image ships the photo")


def test_disparity_becomes_metric_depth_and_unmeasured_pixels_none():
    depth = disparity_to_depth(np.array([[0.0, np.inf, 10.0]]), focal_px=1000.0, baseline_m=0.2, doffs_px=30.0)
    assert np.isnan(depth[0, 0]) and np.isnan(depth[0, 1])
    assert depth[0, 2] == pytest.approx(1000.0 * 0.2 / 40.0)
    photo = motorcycle()
    assert photo.image.shape == (500, 741, 3) and photo.depth.shape == (500, 741)
    assert 2.0 < np.nanmin(photo.depth) < 2.2 and 4.9 < np.nanmax(photo.depth) < 5.1  # the calibrated scene
    assert 0.9 < np.isfinite(photo.depth).mean() < 0.95


def test_pairwise_ordering_counts_order_not_scale():
    gt = torch.rand(40, 50, generator=torch.Generator().manual_seed(0)) * 4 + 1
    assert pairwise_ordering(gt, gt) == 1.0
    assert pairwise_ordering(torch.log(gt) * 7 + 100, gt) == 1.0  # any increasing map orders the same
    assert pairwise_ordering(1 / gt, gt) == 0.0
    assert pairwise_ordering(torch.ones_like(gt), gt) == 0.5  # a tie is half right
    noisy = gt + torch.randn(40, 50, generator=torch.Generator().manual_seed(1))
    assert pairwise_ordering(noisy, gt) == pairwise_ordering(noisy, gt)  # seeded pairs
    assert 0.5 < pairwise_ordering(noisy, gt) < 0.95
    valid = torch.zeros_like(gt, dtype=torch.bool)
    valid[:, :25] = True
    flipped = torch.where(valid, gt, -gt)  # wrong only where not valid
    assert pairwise_ordering(flipped, gt, valid) == 1.0


def test_relief_says_how_far_the_depths_are_spread():
    gt = torch.rand(40, 50, generator=torch.Generator().manual_seed(0)) * 4 + 1
    assert depth_relief(gt, gt) == pytest.approx(1.0)
    assert depth_relief(7 * gt, gt) == pytest.approx(1.0)  # a global scale is not relief
    assert depth_relief(3 * gt**1.5, gt) == pytest.approx(1.5)  # stretched: near too near against far
    assert depth_relief(gt**0.5, gt) == pytest.approx(0.5)  # flattened
    assert depth_relief(torch.ones_like(gt), gt) == 0.0
    valid = torch.zeros_like(gt, dtype=torch.bool)
    valid[:, :25] = True
    assert depth_relief(torch.where(valid, gt**2, gt), gt, valid) == pytest.approx(2.0)  # only valid pixels count
    assert np.isnan(depth_relief(gt, torch.full_like(gt, 2.0)))  # no spread to compare with
    assert np.isnan(depth_relief(gt, gt, torch.zeros_like(valid)))


def test_table_rows_show_only_numbers_from_a_file():
    scores = {"pair_ordering": 0.8125, "sa_delta1": "high", "delta1": True, "abs_rel": float("nan")}  # no relief
    photo = {"model": scores, "baselines": {"constant": scores, "ramp": {}}, "where": {}}
    (name, cells), *_ = table_rows(photo)
    assert name == "model" and cells == ["0.812", "–", "–", "–", "–", "–"]


def test_scores_separate_scale_from_structure():
    gt = np.where(np.random.default_rng(0).random((30, 40)) < 0.1, np.nan, np.linspace(1, 5, 40)[None].repeat(30, 0))
    scores = depth_scores(3 * np.nan_to_num(gt, nan=1.0), gt)
    assert scores["sa_delta1"] == pytest.approx(1.0) and scores["sa_abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert scores["delta1"] == 0.0 and scores["pair_ordering"] == 1.0
    assert scores["n_pixels"] == int(np.isfinite(gt).sum())
    assert scores["relief"] == pytest.approx(1.0)
    assert depth_scores(np.nan_to_num(gt, nan=1.0) ** 2, gt)["relief"] == pytest.approx(2.0)
    top_far = ramp(30, 40)
    assert top_far[0, 0] == 2.0 and top_far[-1, 0] == 1.0


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, create_model("joint", encoder="lean", context=False, base_channels=8),
                    info={"task": "joint", "input_mode": "fg_bg", "input_size": [64, 64]})
    return path


def test_real_check_scores_the_photo_at_its_aspect_beside_the_baselines(checkpoint, tmp_path):
    record = real_check(checkpoint, tmp_path / "real", device="cpu")
    (photo,) = record["photos"]
    assert photo["network_size"] == [64, 96]  # 741 x 500, never squashed
    assert photo["baselines"]["constant"]["pair_ordering"] == 0.5
    assert photo["baselines"]["ramp"]["pair_ordering"] > 0.7  # the layout prior a model must beat
    assert set(photo["where"]) >= {"near half", "far half"}
    assert photo["where"]["near half"]["n_pixels"] + photo["where"]["far half"]["n_pixels"] \
        == photo["model"]["n_pixels"]
    saved = json.loads((tmp_path / "real" / REAL_JSON).read_text())
    assert saved["photos"][0]["model"]["sa_delta1"] == pytest.approx(photo["model"]["sa_delta1"])
    assert (tmp_path / "real" / "motorcycle.png").stat().st_size > 10_000
    assert "ramp (baseline)" in summary_markdown(record)


def test_validate_real_command_writes_beside_the_run_and_never_over_its_input(checkpoint, capsys):
    run = checkpoint.parent.parent
    (run / "config.json").write_text("{}")
    (run / "history.json").write_text('{"epochs": []}')
    assert main(["validate", "--real", "-c", str(checkpoint.parent.parent), "--device", "cpu"]) == 0
    assert (checkpoint.parent.parent / "real" / REAL_JSON).is_file()
    assert "pair ordering" in capsys.readouterr().out
    assert main(["validate", "--real", "-c", str(checkpoint), "--out", str(checkpoint)]) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert checkpoint.stat().st_size > 1000  # untouched
