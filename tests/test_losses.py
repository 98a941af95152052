"""Losses: values against independent numpy / torchmetrics computations, masking, gradients,
the joint criterion (fixed and uncertainty weighting) and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error
from torchmetrics.functional.image import structural_similarity_index_measure

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, depth_from_raw
from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.losses import (
    DEPTH_LOSSES,
    HUBER_BETA,
    MASK_LOSSES,
    build_loss,
    densedepth_depth_loss,
    gradient_depth_loss,
    l1_depth_loss,
    l1_ssi_depth_loss,
    object_depth_error,
    ssim_depth_loss,
)

SPAN = math.log(DEPTH_MAX) - math.log(DEPTH_MIN)


def _t_np(d):
    """Normalised log depth, by hand."""
    return (np.log(np.clip(d, DEPTH_MIN, DEPTH_MAX)) - math.log(DEPTH_MIN)) / SPAN


@pytest.fixture
def depth_pair():
    g = torch.Generator().manual_seed(1)
    gt = depth_from_raw(torch.randn(3, 1, 16, 16, generator=g))
    pred = depth_from_raw(torch.randn(3, 1, 16, 16, generator=g))
    return pred, gt


@pytest.fixture
def gt_with_holes(depth_pair):
    """Ground truth with invalid pixels of every kind: 0, NaN, +inf, negative."""
    _, gt = depth_pair
    gt = gt.clone()
    gt[0, 0, :3, :] = 0.0
    gt[1, 0, 5, 5] = float("nan")
    gt[1, 0, 6, 6] = float("inf")
    gt[2, 0, :, :2] = -1.0
    valid = torch.isfinite(gt) & (gt > 0)
    return gt, valid


# --------------------------------------------------------------------------- mask losses


def test_bce_and_dice_match_numpy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=g) * 3
    target = (torch.rand(2, 1, 8, 8, generator=g) > 0.6).float()
    x, y = logits.numpy().astype(np.float64), target.numpy().astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    inter = (p * y).reshape(2, -1).sum(1)
    dice = (2 * inter + 1) / (p.reshape(2, -1).sum(1) + y.reshape(2, -1).sum(1) + 1)
    assert MASK_LOSSES["bce"](logits, target).item() == pytest.approx(bce, rel=1e-5)
    assert MASK_LOSSES["dice"](logits, target).item() == pytest.approx((1 - dice).mean(), rel=1e-5)
    assert MASK_LOSSES["bce_dice"](logits, target).item() == pytest.approx(bce + (1 - dice).mean(), rel=1e-5)


@pytest.mark.parametrize("name", list(MASK_LOSSES))
def test_mask_losses_near_zero_when_perfect_and_positive_otherwise(name):
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    perfect = (target * 2 - 1) * 30  # saturated logits of the right sign
    assert MASK_LOSSES[name](perfect, target).item() < 1e-6
    wrong = -perfect / 30
    logits = wrong.clone().requires_grad_(True)
    loss = MASK_LOSSES[name](logits, target)
    assert loss.item() > 0.1
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


# --------------------------------------------------------------------------- depth losses


def test_pixel_losses_match_independent_computation(depth_pair, gt_with_holes):
    pred, _ = depth_pair
    gt, valid = gt_with_holes
    tp = torch.from_numpy(_t_np(pred.numpy().astype(np.float64)))[valid]
    tg = torch.from_numpy(_t_np(np.nan_to_num(gt.numpy().astype(np.float64), nan=1.0, posinf=1.0)))[valid]
    assert DEPTH_LOSSES["l1"](pred, gt).item() == pytest.approx(mean_absolute_error(tp, tg).item(), rel=1e-5)
    assert DEPTH_LOSSES["mse"](pred, gt).item() == pytest.approx(mean_squared_error(tp, tg).item(), rel=1e-5)
    d = (tp - tg).abs().numpy()
    huber = np.where(d < HUBER_BETA, 0.5 * d**2 / HUBER_BETA, d - 0.5 * HUBER_BETA).mean()
    assert DEPTH_LOSSES["huber"](pred, gt).item() == pytest.approx(huber, rel=1e-5)


def test_gradient_loss_matches_numpy(depth_pair, gt_with_holes):
    pred, _ = depth_pair
    gt, valid = gt_with_holes
    p = _t_np(pred.numpy().astype(np.float64))
    g = _t_np(np.nan_to_num(gt.numpy().astype(np.float64), nan=1.0, posinf=1.0))
    v = valid.numpy()
    err_x = np.abs(np.diff(p, axis=-1) - np.diff(g, axis=-1))[v[..., 1:] & v[..., :-1]]
    err_y = np.abs(np.diff(p, axis=-2) - np.diff(g, axis=-2))[v[..., 1:, :] & v[..., :-1, :]]
    total = err_x.mean() + err_y.mean()
    assert gradient_depth_loss(pred, gt).item() == pytest.approx(total, rel=1e-5)


def test_ssim_loss_is_torchmetrics_ssim_on_normalised_log_depth(depth_pair):
    pred, gt = depth_pair
    tp = torch.from_numpy(_t_np(pred.numpy())).float()
    tg = torch.from_numpy(_t_np(gt.numpy())).float()
    ssim = structural_similarity_index_measure(tp, tg, data_range=1.0)
    assert ssim_depth_loss(pred, gt).item() == pytest.approx((1 - ssim.item()) / 2, rel=1e-4)
    dense = densedepth_depth_loss(pred, gt).item()
    parts = (1 - ssim.item()) / 2 + gradient_depth_loss(pred, gt).item() + 0.1 * l1_depth_loss(pred, gt).item()
    assert dense == pytest.approx(parts, rel=1e-4)


@pytest.mark.parametrize("name", list(DEPTH_LOSSES))
def test_depth_losses_zero_when_perfect_positive_otherwise_with_finite_gradients(name, depth_pair, gt_with_holes):
    pred, _ = depth_pair
    gt, valid = gt_with_holes
    perfect = torch.where(valid, gt, pred)
    assert DEPTH_LOSSES[name](perfect, gt).item() == pytest.approx(0.0, abs=1e-5)
    raw = torch.randn(pred.shape, generator=torch.Generator().manual_seed(3), requires_grad=True)
    loss = DEPTH_LOSSES[name](depth_from_raw(raw), gt)
    assert torch.isfinite(loss) and loss.item() > 1e-3
    loss.backward()
    assert torch.isfinite(raw.grad).all()
    assert raw.grad[valid].abs().sum() > 0


@pytest.mark.parametrize("name", ["l1", "mse", "huber", "gradient", "silog"])
def test_invalid_pixels_are_ignored(name, depth_pair, gt_with_holes):
    pred, _ = depth_pair
    gt, valid = gt_with_holes
    wild = torch.where(valid, pred, torch.full_like(pred, 77.0))
    assert DEPTH_LOSSES[name](wild, gt).item() == pytest.approx(DEPTH_LOSSES[name](pred, gt).item(), rel=1e-6)
    # An explicit `valid` mask removes pixels as well as an invalid ground truth does.
    keep = torch.ones_like(valid)
    keep[:, :, :, 8:] = False
    bad_right = torch.where(keep, pred, torch.full_like(pred, 50.0))
    assert DEPTH_LOSSES[name](bad_right, gt, keep).item() == pytest.approx(
        DEPTH_LOSSES[name](pred, gt, keep).item(), rel=1e-6
    )


def test_no_valid_pixel_gives_zero_loss_that_still_backpropagates():
    raw = torch.zeros(2, 1, 16, 16, requires_grad=True)
    gt = torch.zeros(2, 1, 16, 16)
    for name, fn in DEPTH_LOSSES.items():
        loss = fn(depth_from_raw(raw), gt)
        assert loss.item() == 0.0, name
        loss.backward()
        assert torch.isfinite(raw.grad).all(), name


def test_silog_scale_invariance_matches_formula(depth_pair):
    _, gt = depth_pair
    for c in (0.5, 2.0, 3.0):
        value = DEPTH_LOSSES["silog"](c * gt, gt).item()
        assert value == pytest.approx((1 - 0.5) * math.log(c) ** 2, rel=1e-4)


def test_silog_matches_numpy_per_image(depth_pair, gt_with_holes):
    pred, _ = depth_pair
    gt, valid = gt_with_holes
    values = []
    for b in range(pred.shape[0]):
        v = valid[b].numpy()
        e = np.log(pred[b].numpy().astype(np.float64)[v]) - np.log(gt[b].numpy().astype(np.float64)[v])
        values.append((e**2).mean() - 0.5 * e.mean() ** 2)
    assert DEPTH_LOSSES["silog"](pred, gt).item() == pytest.approx(np.mean(values), rel=1e-5)


def test_l1_ssid_adds_nothing_for_a_disparity_off_by_scale_and_shift_and_matches_numpy(depth_pair, gt_with_holes):
    """The MiDaS term is blind to an affine change of disparity and, otherwise, is the least-squares
    aligned disparity's mean absolute error over the gt disparity's mean absolute deviation;
    l1_ssi_ssid is l1_ssi plus the same term."""
    pred, _ = depth_pair
    gt, valid = gt_with_holes
    affine = torch.where(valid, 1.0 / (0.7 / gt.clamp_min(1e-3) + 0.05), pred)
    assert DEPTH_LOSSES["l1_ssid"](affine, gt).item() == pytest.approx(DEPTH_LOSSES["l1"](affine, gt).item(), abs=1e-5)
    values = []
    for b in range(pred.shape[0]):
        v = valid[b].numpy()
        x = 1.0 / pred[b].numpy().astype(np.float64)[v]
        y = 1.0 / gt[b].numpy().astype(np.float64)[v]
        a, c = np.polyfit(x, y, 1)
        values.append(np.abs(a * x + c - y).mean() / np.abs(y - y.mean()).mean())
    extra = DEPTH_LOSSES["l1_ssid"](pred, gt).item() - DEPTH_LOSSES["l1"](pred, gt).item()
    assert extra > 0.05 and extra == pytest.approx(np.mean(values), rel=1e-4)
    mixed = DEPTH_LOSSES["l1_ssi_ssid"](pred, gt).item()
    assert mixed == pytest.approx(DEPTH_LOSSES["l1_ssi"](pred, gt).item() + np.mean(values), rel=1e-4)


def test_ssim_refuses_images_smaller_than_its_window():
    d = torch.ones(1, 1, 8, 8)
    with pytest.raises(MaskdepthError, match="at least 11x11"):
        ssim_depth_loss(d, d)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(MaskdepthError, match="shape"):
        l1_depth_loss(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 5))


# --------------------------------------------------------------------------- joint criterion


def _batch(seed=0, n=2, size=16):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    depth = depth_from_raw(torch.randn(n, 1, size, size, generator=g))
    return {"mask": mask, "depth": depth, "image": torch.rand(n, 3, size, size, generator=g)}


def _pred(seed=1, n=2, size=16):
    g = torch.Generator().manual_seed(seed)
    return {
        "mask": torch.randn(n, 1, size, size, generator=g, requires_grad=True),
        "depth": depth_from_raw(torch.randn(n, 1, size, size, generator=g)).requires_grad_(True),
    }


def test_joint_loss_is_weighted_sum_of_task_losses():
    target, pred = _batch(), _pred()
    crit = build_loss("joint", mask_loss="bce", depth_loss="mse", weights={"mask": 2.0, "depth": 0.5})
    out = crit(pred, target)
    assert set(out) == {"loss", "mask", "depth"}
    assert out["mask"].item() == pytest.approx(MASK_LOSSES["bce"](pred["mask"], target["mask"]).item())
    assert out["depth"].item() == pytest.approx(DEPTH_LOSSES["mse"](pred["depth"], target["depth"]).item())
    assert out["loss"].item() == pytest.approx(2.0 * out["mask"].item() + 0.5 * out["depth"].item(), rel=1e-6)
    out["loss"].backward()
    assert torch.isfinite(pred["mask"].grad).all() and torch.isfinite(pred["depth"].grad).all()
    assert list(crit.parameters()) == []


@pytest.mark.parametrize("task", ["mask", "depth"])
def test_single_task_criterion_needs_only_its_own_output(task):
    target, pred = _batch(), _pred()
    out = build_loss(task)({task: pred[task]}, target)
    assert set(out) == {"loss", task}
    assert out["loss"].item() == pytest.approx(out[task].item())


def test_uncertainty_weighting_formula_and_gradients():
    target, pred = _batch(), _pred()
    crit = build_loss("joint", mask_loss="bce_dice", depth_loss="l1", uncertainty=True)
    with torch.no_grad():
        crit.log_vars["mask"].fill_(0.7)
        crit.log_vars["depth"].fill_(-0.4)
    out = crit(pred, target)
    expected = math.exp(-0.7) * out["mask"].item() + 0.7 + math.exp(0.4) * out["depth"].item() - 0.4
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    out["loss"].backward()
    params = list(crit.parameters())
    assert len(params) == 2
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().item() > 0
    # d total / d s_i = 1 - exp(-s_i) L_i
    assert crit.log_vars["mask"].grad.item() == pytest.approx(1 - math.exp(-0.7) * out["mask"].item(), rel=1e-5)
    assert crit.task_weights()["depth"] == pytest.approx(math.exp(0.4))
    assert set(crit.state_dict()) == {"log_vars.mask", "log_vars.depth"}


def test_criterion_ignores_autocast():
    target, pred = _batch(), _pred()
    crit = build_loss("joint", depth_loss="densedepth")
    plain = crit(pred, target)["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_amp = crit(pred, target)["loss"]
    assert under_amp.dtype == torch.float32
    assert under_amp.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_loss": "focal"}, "bce, dice, bce_dice"),
        ({"depth_loss": "berhu"}, "l1, mse, huber, ssim, gradient, densedepth, silog"),
        ({"task": "segmentation"}, "joint, mask, depth"),
        ({"weights": {"normals": 1.0}}, "unknown task"),
        ({"weights": {"mask": -1.0}}, ">= 0"),
        ({"weights": {"depth": "heavy"}}, "expected a number"),
        ({"uncertainty": True, "weights": {"mask": 2.0}}, "exclude each other"),
        ({"uncertainty": True, "task": "mask"}, "two tasks"),
        ({"object_weight": -1.0}, "object_weight: must be finite and >= 0"),
        ({"object_weight": math.inf}, "object_weight: must be finite and >= 0"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(MaskdepthError, match=message):
        build_loss(**kwargs)


def test_missing_prediction_is_a_clear_error():
    with pytest.raises(MaskdepthError, match="pred has no 'depth'"):
        build_loss("joint")({"mask": torch.zeros(1, 1, 4, 4)}, _batch())


# --------------------------------------------------------------------------- object term


def _scene_with_object(factor: float):
    """Two 16 x 16 images: the background exact, a 3 x 3 object predicted `factor` times too far;
    the second image also scaled by 2 everywhere (a camera-scale error the term must not see)."""
    g = torch.Generator().manual_seed(3)
    gt = depth_from_raw(torch.randn(2, 1, 16, 16, generator=g))
    mask = torch.zeros_like(gt)
    mask[:, :, 6:9, 6:9] = 1.0
    pred = torch.where(mask > 0, gt * factor, gt)
    pred[1] *= 2.0
    return pred, gt, mask


def test_object_term_is_the_objects_log_error_against_its_scene():
    pred, gt, mask = _scene_with_object(1.5)
    # The median log error is the background's (0, or log 2 in the scaled image), so the object's
    # error left after it is exactly log(1.5) in normalised log depth, whatever the camera's scale.
    expected = math.log(1.5) / SPAN
    assert object_depth_error(pred, gt, mask).item() == pytest.approx(expected, rel=1e-4)
    # A per-pixel loss sees the same error diluted by the object's 9 / 256 of the image.
    assert l1_ssi_depth_loss(pred[:1], gt[:1]).item() < 0.1 * expected
    exact, _, _ = _scene_with_object(1.0)
    assert object_depth_error(exact, gt, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_object_term_counts_only_images_that_show_an_object():
    pred, gt, mask = _scene_with_object(1.5)
    mask[1] = 0.0
    pred[1] = gt[1] * 3.0  # a large error, but no object in that image
    pred[1, :, :4] = gt[1, :, :4]
    assert object_depth_error(pred, gt, mask).item() == pytest.approx(math.log(1.5) / SPAN, rel=1e-4)
    assert object_depth_error(pred, gt, torch.zeros_like(mask)).item() == 0.0


def test_object_weight_adds_the_term_to_the_depth_loss_and_needs_the_mask():
    pred_depth, gt, mask = _scene_with_object(1.5)
    target = {"mask": mask, "depth": gt}
    pred = {"mask": torch.zeros_like(mask), "depth": pred_depth.clone().requires_grad_(True)}
    plain = build_loss("joint", depth_loss="l1_ssi")(pred, target)
    weighted = build_loss("joint", depth_loss="l1_ssi", object_weight=2.0)(pred, target)
    assert set(weighted) == {"loss", "mask", "depth", "object"}
    assert weighted["object"].item() == pytest.approx(object_depth_error(pred_depth, gt, mask).item())
    assert weighted["depth"].item() == pytest.approx(plain["depth"].item() + 2.0 * weighted["object"].item(), rel=1e-6)
    weighted["loss"].backward()
    grad = pred["depth"].grad
    assert grad[:, :, 6:9, 6:9].abs().mean() > 10 * grad[:, :, :4, :4].abs().mean()
    with pytest.raises(MaskdepthError, match="object_weight needs the ground-truth mask"):
        build_loss("depth", object_weight=1.0)({"depth": pred_depth}, {"depth": gt})
    assert "object" not in build_loss("mask", object_weight=1.0)({"mask": pred["mask"]}, target)
