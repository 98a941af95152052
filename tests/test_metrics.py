"""Metrics against numpy by hand and torchmetrics, on random data and cases worked out on paper;
dataset accumulation (not a mean of batch means), invalid pixels, per-sample scores, DDP sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional import mean_absolute_percentage_error, mean_squared_error
from torchmetrics.functional.classification import binary_accuracy, binary_f1_score, binary_jaccard_index

from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.catalogue import (
    CATALOGUE,
    DEPTH_KEYS,
    MASK_IMAGE_KEYS,
    MASK_KEYS,
    OBJECT_KEYS,
    ORDERING_KEYS,
    SCALE_ALIGNED_KEYS,
    is_better,
    parse_split_metric,
)
from maskdepth.evaluation.metrics import (
    DepthMeter,
    MaskMeter,
    compute_depth_errors,
    depth_errors_per_sample,
    mask_scores_per_sample,
    ordering_terms,
    scale_aligned,
    size_bin,
)
from maskdepth.evaluation.tables import definitions_table, markdown_table

ALL_DEPTH_KEYS = {*DEPTH_KEYS, *SCALE_ALIGNED_KEYS, *OBJECT_KEYS, *ORDERING_KEYS}


def _np_depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict:
    """monodepth2's definitions, written out over flat arrays of valid pixels."""
    pred, gt = pred.astype(np.float64), gt.astype(np.float64)
    thresh = np.maximum(gt / pred, pred / gt)
    rmse = np.sqrt(((gt - pred) ** 2).mean())
    return {
        "abs_rel": np.mean(np.abs(gt - pred) / gt),
        "sq_rel": np.mean((gt - pred) ** 2 / gt),
        "rmse": rmse,
        "rmse_log": np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean()),
        "log10": np.mean(np.abs(np.log10(gt) - np.log10(pred))),
        "delta1": (thresh < 1.25).mean(),
        "delta2": (thresh < 1.25**2).mean(),
        "delta3": (thresh < 1.25**3).mean(),
        "rmse_over_std": rmse / gt.std(),
    }


def _random_depth(seed, shape=(3, 1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    gt = 1.0 + 20 * torch.rand(shape, generator=g)  # pred stays inside [DEPTH_MIN, DEPTH_MAX]
    pred = gt * torch.exp(0.3 * torch.randn(shape, generator=g))
    return pred, gt


def _random_mask(seed, shape=(4, 1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 2, (torch.rand(shape, generator=g) > 0.6).float()


# --------------------------------------------------------------------------- mask


def test_four_pixel_mask_case_worked_on_paper():
    logits = torch.tensor([2.0, -1.0, 3.0, -2.0]).view(1, 1, 2, 2)  # predicts 1, 0, 1, 0
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    meter = MaskMeter()
    meter.update(logits, target)
    # TP=1, FN=1, FP=1, TN=1: IoU 1/3, Dice 2/4, accuracy 2/4
    got = meter.compute()
    assert {k: got[k] for k in MASK_KEYS} == pytest.approx({"iou": 1 / 3, "dice": 0.5, "pixel_acc": 0.5})
    assert got["miou"] == pytest.approx(1 / 3)  # one image: its IoU


def test_mask_meter_matches_torchmetrics_on_random_data():
    logits, target = _random_mask(0)
    meter = MaskMeter()
    meter.update(logits, target)
    got = meter.compute()
    prob, t = torch.sigmoid(logits).flatten(), target.flatten().long()
    assert got["iou"] == pytest.approx(binary_jaccard_index(prob, t, threshold=0.5).item(), rel=1e-6)
    assert got["dice"] == pytest.approx(binary_f1_score(prob, t, threshold=0.5).item(), rel=1e-6)
    assert got["pixel_acc"] == pytest.approx(binary_accuracy(prob, t, threshold=0.5).item(), rel=1e-6)


def test_perfect_mask_scores_one():
    _, target = _random_mask(1)
    meter = MaskMeter()
    meter.update(target * 8 - 4, target)
    got = meter.compute()
    assert {k: got[k] for k in (*MASK_KEYS, "miou")} == {"iou": 1.0, "dice": 1.0, "pixel_acc": 1.0, "miou": 1.0}


def test_mask_accumulation_is_over_pixels_not_a_mean_of_batches():
    # Batch A: big object, perfect. Batch B: small object, half missed. They have different weights.
    a_t = torch.zeros(2, 1, 8, 8)
    a_t[:, :, :6, :6] = 1
    a_l = a_t * 4 - 2
    b_t = torch.zeros(1, 1, 8, 8)
    b_t[:, :, :2, :2] = 1
    b_l = torch.full_like(b_t, -2.0)
    b_l[:, :, :1, :2] = 2.0
    meter = MaskMeter()
    meter.update(a_l, a_t)
    meter.update(b_l, b_t)
    whole = MaskMeter()
    whole.update(torch.cat([a_l, b_l]), torch.cat([a_t, b_t]))
    assert meter.compute() == pytest.approx(whole.compute(), nan_ok=True)
    tp, union = 72 + 2, 72 + 4  # by hand: A's 2×36 pixels, B's 2 of 4
    assert meter.compute()["iou"] == pytest.approx(tp / union)
    assert abs(meter.compute()["iou"] - (1.0 + 0.5) / 2) > 0.2  # the mean of batch IoUs differs


def test_mask_scores_per_sample_and_empty_vs_empty():
    logits, target = _random_mask(2)
    logits[1] = -5.0
    target[1] = 0.0  # empty prediction of an empty mask
    scores = mask_scores_per_sample(logits, target)
    assert set(scores) == {"iou", "dice", "pixel_acc"}
    for b in (0, 2, 3):
        prob, t = torch.sigmoid(logits[b]).flatten(), target[b].flatten().long()
        assert scores["iou"][b].item() == pytest.approx(binary_jaccard_index(prob, t).item(), rel=1e-6)
        assert scores["dice"][b].item() == pytest.approx(binary_f1_score(prob, t).item(), rel=1e-6)
    assert scores["iou"][1].item() == 1.0 and scores["dice"][1].item() == 1.0
    assert scores["pixel_acc"][1].item() == 1.0


def test_mask_meter_reset_and_errors():
    meter = MaskMeter()
    with pytest.raises(MaskdepthError, match="no pixels"):
        meter.compute()
    logits, target = _random_mask(3)
    meter.update(logits, target)
    meter.reset()
    meter.update(target * 2 - 1, target)
    assert meter.compute()["iou"] == 1.0
    assert meter.state.dtype == torch.float64
    with pytest.raises(MaskdepthError, match="shapes differ"):
        meter.update(logits, target[:, :, :4])


# --------------------------------------------------------------------------- depth


def test_depth_meter_matches_numpy_and_torchmetrics_on_random_data():
    pred, gt = _random_depth(0)
    meter = DepthMeter()
    meter.update(pred, gt)
    got = meter.compute()
    want = _np_depth_errors(pred.numpy().ravel(), gt.numpy().ravel())
    assert set(got) == ALL_DEPTH_KEYS
    for key in DEPTH_KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    p, g = pred.flatten().double(), gt.flatten().double()
    assert got["rmse"] == pytest.approx(math.sqrt(mean_squared_error(p, g).item()), rel=1e-9)
    assert got["abs_rel"] == pytest.approx(mean_absolute_percentage_error(p, g).item(), rel=1e-9)
    assert 0 < got["delta1"] < got["delta2"] < got["delta3"] < 1  # the random case exercises all three


def test_perfect_depth_and_double_depth_known_answers():
    gt = torch.tensor([1.0, 2.0, 4.0, 8.0]).view(1, 1, 2, 2)
    perfect = compute_depth_errors(gt, gt)
    assert perfect["abs_rel"] == 0 and perfect["rmse"] == 0 and perfect["rmse_log"] == 0
    assert perfect["delta1"] == perfect["delta2"] == perfect["delta3"] == 1
    double = compute_depth_errors(2 * gt, gt)
    assert double["abs_rel"] == pytest.approx(1.0)
    assert double["sq_rel"] == pytest.approx((1 + 2 + 4 + 8) / 4)  # Σ gt² / gt / n
    assert double["rmse"] == pytest.approx(math.sqrt((1 + 4 + 16 + 64) / 4))
    assert double["rmse_log"] == pytest.approx(math.log(2))
    assert double["log10"] == pytest.approx(math.log10(2))
    assert double["delta1"] == double["delta2"] == double["delta3"] == 0  # 2 > 1.25³ ≈ 1.95
    std = math.sqrt(np.var([1, 2, 4, 8]))
    assert double["rmse_over_std"] == pytest.approx(math.sqrt(85 / 4) / std)


def test_invalid_depth_pixels_are_ignored():
    pred, gt = _random_depth(1)
    valid = torch.ones_like(gt, dtype=torch.bool)
    gt = gt.clone()
    for idx, bad in (((0, 0, 0, 0), 0.0), ((1, 0, 3, 3), float("nan")), ((2, 0, 5, 1), float("inf"))):
        gt[idx] = bad
        valid[idx] = False
    gt[2, 0, 7] = -3.0
    valid[2, 0, 7] = False
    wild = torch.where(valid, pred, torch.full_like(pred, 70.0))
    meter = DepthMeter()
    meter.update(wild, gt)
    want = _np_depth_errors(pred[valid].numpy(), gt[valid].numpy())
    for key in DEPTH_KEYS:
        assert meter.compute()[key] == pytest.approx(want[key], rel=1e-6), key
    # An explicit `valid` argument drops pixels too.
    keep = valid.clone()
    keep[:, :, :, 4:] = False
    explicit = DepthMeter()
    explicit.update(pred, gt, valid=keep)
    want = _np_depth_errors(pred[keep].numpy(), gt[keep].numpy())
    assert explicit.compute()["abs_rel"] == pytest.approx(want["abs_rel"], rel=1e-6)
    assert explicit.state[0].item() == keep.sum().item()


def test_depth_accumulation_equals_one_shot_on_the_concatenation():
    # Batch A: many pixels, small errors, near depths. Batch B: few pixels, big errors, far depths.
    pred_a, gt_a = _random_depth(2, (4, 1, 8, 8))
    gt_b = torch.full((1, 1, 2, 2), 40.0)
    pred_b = gt_b * 1.5
    meter = DepthMeter()
    meter.update(pred_a, gt_a)
    meter.update(pred_b, gt_b)
    whole = compute_depth_errors(torch.cat([pred_a.flatten(), pred_b.flatten()]).view(1, -1),
                                 torch.cat([gt_a.flatten(), gt_b.flatten()]).view(1, -1))
    got = meter.compute()
    assert {k: got[k] for k in DEPTH_KEYS} == pytest.approx(whole, rel=1e-9)
    batch_a, batch_b = compute_depth_errors(pred_a, gt_a), compute_depth_errors(pred_b, gt_b)
    for key in ("rmse", "abs_rel", "delta1"):
        assert abs(got[key] - (batch_a[key] + batch_b[key]) / 2) > 0.05 * abs(got[key]), key
    # rmse_over_std uses the spread of *all* ground-truth pixels, which neither batch has alone.
    all_gt = torch.cat([gt_a.flatten(), gt_b.flatten()]).double().numpy()
    assert got["rmse_over_std"] == pytest.approx(got["rmse"] / all_gt.std(), rel=1e-9)
    assert math.isnan(batch_b["rmse_over_std"])  # constant ground truth: no spread


def test_depth_errors_per_sample_match_one_image_at_a_time():
    pred, gt = _random_depth(3)
    gt[1] = 0.0  # an image without any valid pixel
    per = depth_errors_per_sample(pred, gt)
    assert set(per) >= set(DEPTH_KEYS) - {"rmse_over_std"}
    for b in (0, 2):
        single = _np_depth_errors(pred[b].numpy().ravel(), gt[b].numpy().ravel())
        for key in DEPTH_KEYS:
            assert per[key][b].item() == pytest.approx(single[key], rel=1e-6), key
    assert all(math.isnan(per[key][1].item()) for key in per)


def test_depth_meter_reset_empty_and_shape_errors():
    meter = DepthMeter()
    meter.update(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(MaskdepthError, match="no valid depth"):
        meter.compute()
    pred, gt = _random_depth(4)
    meter.update(pred, gt)
    meter.reset()
    meter.update(gt, gt)
    assert meter.compute()["abs_rel"] == 0.0
    with pytest.raises(MaskdepthError, match="shapes differ"):
        meter.update(pred, gt[:1])


# --------------------------------------------------------------------------- distributed


def test_all_reduce_is_a_no_op_without_torch_distributed():
    meter = DepthMeter()
    pred, gt = _random_depth(5)
    meter.update(pred, gt)
    before = meter.compute()
    meter.all_reduce()
    assert meter.compute() == pytest.approx(before, nan_ok=True)


def _ddp_worker(rank, world, init_file, out_file):
    import torch.distributed as dist

    torch.set_num_threads(1)  # a forked child must not use the parent's thread pool
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    pred, gt = _random_depth(6, (4, 1, 8, 8))
    logits, target = _random_mask(6)
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    shard = slice(rank * 3, rank * 3 + 3) if rank == 0 else slice(3, 4)  # uneven shards
    mask_meter.update(logits[shard], target[shard])
    depth_meter.update(pred[shard], gt[shard], mask=target[shard])
    mask_meter.all_reduce()
    depth_meter.all_reduce()
    if rank == 1:
        torch.save({"mask": mask_meter.compute(), "depth": depth_meter.compute()}, out_file)
    dist.destroy_process_group()


def test_all_reduce_sums_uneven_shards_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "rank1.pt"
    # fork, not spawn: the children reuse the imported torch (about 1 s instead of 10 s).
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, start_method="fork")
    got = torch.load(out)
    pred, gt = _random_depth(6, (4, 1, 8, 8))
    logits, target = _random_mask(6)
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    mask_meter.update(logits, target)
    depth_meter.update(pred, gt, mask=target)
    assert got["mask"] == pytest.approx(mask_meter.compute(), rel=1e-12, nan_ok=True)
    assert got["depth"] == pytest.approx(depth_meter.compute(), rel=1e-12, nan_ok=True)
    assert got["depth"]["ordering_n"] > 0 and got["mask"]["iou_large_n"] == 4


@pytest.mark.hardware
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_meters_accumulate_on_the_gpu():
    pred, gt = _random_depth(7)
    logits, target = _random_mask(7)
    cpu_d, gpu_d, cpu_m, gpu_m = DepthMeter(), DepthMeter(), MaskMeter(), MaskMeter()
    mask = torch.zeros_like(gt)
    mask[:, :, 3:6, 2:5] = 1
    cpu_d.update(pred, gt, mask=mask)
    gpu_d.update(pred.cuda(), gt.cuda(), mask=mask.cuda())
    cpu_m.update(logits, target)
    gpu_m.update(logits.cuda(), target.cuda())
    assert gpu_d.state.device.type == "cuda"
    assert gpu_d.compute() == pytest.approx(cpu_d.compute(), rel=1e-9, nan_ok=True)
    assert gpu_m.compute() == pytest.approx(cpu_m.compute(), rel=1e-12, nan_ok=True)


# --------------------------------------------------------------------------- scale-aligned, object, ordering


def test_scale_aligned_metrics_forgive_a_global_scale_only():
    pred, gt = _random_depth(8, (2, 1, 5, 5))  # 25 pixels: the median is one pixel's value
    meter = DepthMeter()
    meter.update(3 * gt, gt)
    got = meter.compute()
    assert got["delta1"] == 0 and got["abs_rel"] == pytest.approx(2.0)  # metric: three times too far
    assert got["sa_delta1"] == 1 and got["sa_abs_rel"] == pytest.approx(0, abs=1e-6)  # float32 input
    assert got["sa_rmse"] == pytest.approx(0, abs=1e-5)
    # Each image gets its own scale: ×3 on one, ×0.5 on the other is still perfect after alignment.
    mixed = torch.cat([3 * gt[:1], 0.5 * gt[1:]])
    per = depth_errors_per_sample(mixed, gt)
    assert per["sa_delta1"].tolist() == [1.0, 1.0] and per["delta1"].tolist() == [0.0, 0.0]
    # A structural error stays: numpy by hand, median(gt) / median(pred) per image, then the definitions.
    meter = DepthMeter()
    meter.update(pred, gt)
    got = meter.compute()
    aligned = []
    for b in range(2):
        p, g = pred[b].numpy().ravel().astype(np.float64), gt[b].numpy().ravel().astype(np.float64)
        aligned.append(p * np.median(g) / np.median(p))
    want = _np_depth_errors(np.concatenate(aligned), gt.numpy().ravel())
    for key in ("abs_rel", "rmse", "delta1"):
        assert got[f"sa_{key}"] == pytest.approx(want[key], rel=1e-9), key
    assert 0 < got["sa_delta1"] < 1
    np.testing.assert_allclose(scale_aligned(pred, gt).numpy(), np.stack(aligned).reshape(pred.shape), rtol=1e-12)


def test_scale_alignment_ignores_invalid_pixels_and_shows_nan_predictions():
    gt = torch.tensor([2.0, 4.0, 8.0, 0.0]).view(1, 1, 2, 2)  # the last pixel has no ground truth
    pred = torch.tensor([1.0, 2.0, 4.0, 70.0]).view(1, 1, 2, 2)  # half of gt; the invalid pixel is wild
    assert compute_depth_errors(scale_aligned(pred, gt), gt)["abs_rel"] == pytest.approx(0, abs=1e-12)
    meter = DepthMeter()
    meter.update(pred, gt)
    assert meter.compute()["sa_delta1"] == 1
    broken = pred.clone()
    broken[0, 0, 0, 0] = float("nan")
    meter.update(broken, gt)
    assert math.isnan(meter.compute()["sa_abs_rel"])


def test_object_region_depth_is_measured_inside_the_gt_mask_only():
    gt = torch.full((1, 1, 4, 4), 5.0)
    mask = torch.zeros_like(gt)
    mask[..., 1:3, 1:3] = 1  # 4 object pixels
    pred = gt.clone()
    pred[mask == 0] = 10.0  # background twice too far, object exact
    meter = DepthMeter()
    meter.update(pred, gt, mask=mask)
    got = meter.compute()
    assert got["obj_abs_rel"] == 0 and got["obj_delta1"] == 1
    assert got["abs_rel"] == pytest.approx(12 / 16) and got["delta1"] == pytest.approx(4 / 16)
    pred = gt.clone()
    pred[..., 1, 1] = 7.5  # one object pixel 50 % too far
    per = depth_errors_per_sample(pred, gt, mask=mask)
    assert per["obj_abs_rel"].item() == pytest.approx(0.5 / 4) and per["obj_delta1"].item() == pytest.approx(3 / 4)
    # Without a mask the object metrics are undefined, not zero.
    plain = DepthMeter()
    plain.update(pred, gt)
    assert math.isnan(plain.compute()["obj_abs_rel"]) and math.isnan(plain.compute()["ordering"])


def _ground_scene():
    """16×16 ground plane seen from above it: row r lies at 2 + (15 − r) / 2 m (far at the top).
    An object stands on row 11 (rows 6–11, columns 6–9) at the depth of its foot, 4 m."""
    rows = torch.arange(16, dtype=torch.float32)
    gt = (2 + (15 - rows) / 2).view(1, 1, 16, 1).repeat(1, 1, 1, 16)
    mask = torch.zeros_like(gt)
    mask[..., 6:12, 6:10] = 1
    gt[mask > 0] = 4.0
    return gt, mask


def test_ordering_reference_region_worked_by_hand():
    gt, mask = _ground_scene()
    # foot 11, h 6 -> rows 11 - max(2, 1) = 9 .. 11; w 4 -> columns 6 - 2 = 4 .. 9 + 2 = 11;
    # outside the mask and behind the object (gt > 4 m): rows 9 (5 m) and 10 (4.5 m) at columns 4, 5, 10, 11.
    pred = gt.clone()
    pred[..., 9:11, 4:6] = 1.0  # the reference, predicted in front of the object: wrong
    pred[..., 9:11, 10:12] = 1.0
    counted, correct = ordering_terms(pred, gt, mask)
    assert counted.tolist() == [True] and correct.tolist() == [False]
    pred = gt.clone()
    pred[..., 9:11, 3] = 1.0  # just outside the widened columns: not part of the reference
    pred[..., 8, 4:12] = 1.0  # just above the band
    pred[..., 11, 4:6] = 1.0  # in the band, but ground at the foot's own depth (not behind): excluded
    pred[..., :4, :] = 0.5  # far ground predicted wrong does not matter
    assert ordering_terms(pred, gt, mask)[1].tolist() == [True]


def test_ordering_true_false_and_uncounted_cases():
    gt, mask = _ground_scene()
    right = gt.clone()
    wrong = gt.clone()
    wrong[mask > 0] = 6.0  # object predicted behind the ground behind its foot
    pillar = gt.clone()
    pillar[..., 9:12, 10:12] = 3.0  # ground truth *in front of* the object beside its foot ...
    pillar_pred = gt.clone()
    pillar_pred[..., 9:12, 10:12] = 1.0  # ... predicted near: not a reference pixel, so still right
    empty_mask = torch.zeros_like(mask)
    wall = torch.zeros_like(mask)
    wall[..., 6:12, :] = 1  # the object spans the image width: no ground beside it, not counted
    preds = torch.cat([right, wrong, pillar_pred, gt, gt])
    gts = torch.cat([gt, gt, pillar, gt, gt])
    masks = torch.cat([mask, mask, mask, empty_mask, wall])
    counted, correct = ordering_terms(preds, gts, masks)
    assert counted.tolist() == [True, True, True, False, False]
    assert correct.tolist() == [True, False, True, False, False]
    per = depth_errors_per_sample(preds, gts, mask=masks)["ordering"]
    assert per[:3].tolist() == [1.0, 0.0, 1.0] and all(math.isnan(v) for v in per[3:].tolist())
    meter = DepthMeter()
    meter.update(preds[:2], gts[:2], mask=masks[:2])  # the sums do not depend on the batching
    meter.update(preds[2:], gts[2:], mask=masks[2:])
    got = meter.compute()
    assert got["ordering"] == pytest.approx(2 / 3) and got["ordering_n"] == 3
    nan_pred = right.clone()
    nan_pred[..., 7, 7] = float("nan")
    assert ordering_terms(nan_pred, gt, mask) == (torch.tensor([True]), torch.tensor([False]))
    with pytest.raises(MaskdepthError, match="shapes differ"):
        ordering_terms(right, gt, mask[..., :8])


# --------------------------------------------------------------------------- per-image IoU, size bins


def test_mean_per_image_iou_beside_pooled_iou():
    target = torch.zeros(2, 1, 10, 10)
    target[0, :, :8, :8] = 1  # big object, found exactly: IoU 1
    target[1, :, :2, :2] = 1  # small object, half found: IoU 0.5
    logits = target * 4 - 2
    logits[1, :, 1, :2] = -2
    meter = MaskMeter()
    meter.update(logits[:1], target[:1])
    meter.update(logits[1:], target[1:])
    got = meter.compute()
    assert got["miou"] == pytest.approx(0.75)
    assert got["iou"] == pytest.approx((64 + 2) / (64 + 4))  # pooled: dominated by the big object


def test_size_bins_by_gt_area():
    area = torch.tensor([0.0, 0.01, 0.0199, 0.02, 0.05, 0.10, 0.1001, 0.4])
    assert size_bin(area).tolist() == [-1, 0, 0, 1, 1, 1, 2, 2]
    target = torch.zeros(4, 1, 10, 10)  # 100 pixels: areas 1 %, 5 %, 20 %, empty
    target[0, :, 0, 0] = 1
    target[1, :, 0, :5] = 1
    target[2, :, :4, :5] = 1
    logits = target * 4 - 2
    logits[0, :, 0, 1] = 2  # small: TP 1, FP 1 -> IoU 1/2
    logits[1, :, 0, 4] = -2  # medium: TP 4, FN 1 -> IoU 4/5
    logits[3, :, 9, 9] = 2  # empty GT mask: in no bin (but in the pooled IoU and in mIoU, as IoU 0)
    meter = MaskMeter()
    meter.update(logits, target)
    got = meter.compute()
    assert (got["iou_small"], got["iou_medium"], got["iou_large"]) == pytest.approx((1 / 2, 4 / 5, 1.0))
    assert (got["iou_small_n"], got["iou_medium_n"], got["iou_large_n"]) == (1, 1, 1)
    assert got["miou"] == pytest.approx((0.5 + 0.8 + 1 + 0) / 4)
    only_large = MaskMeter()
    only_large.update(logits[2:3], target[2:3])
    got = only_large.compute()
    assert math.isnan(got["iou_small"]) and math.isnan(got["iou_medium"]) and got["iou_large"] == 1
    assert got["iou_small_n"] == 0


# --------------------------------------------------------------------------- catalogue


def test_catalogue_describes_every_key_the_meters_produce():
    logits, target = _random_mask(9)
    pred, gt = _random_depth(9, (4, 1, 8, 8))
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    mask_meter.update(logits, target)
    depth_meter.update(pred, gt, mask=target)
    produced = set(mask_meter.compute()) | set(depth_meter.compute())
    assert produced == {*MASK_KEYS, *MASK_IMAGE_KEYS} | ALL_DEPTH_KEYS
    assert produced <= set(CATALOGUE)
    assert {CATALOGUE[k].task for k in MASK_KEYS + MASK_IMAGE_KEYS} == {"mask"}
    assert {CATALOGUE[k].task for k in ALL_DEPTH_KEYS} == {"depth"}
    assert is_better(0.9, 0.8, "iou") and is_better(0.1, 0.2, "abs_rel") and is_better(0.2, 0.3, "loss")
    assert is_better(0.9, 0.8, "ordering") and is_better(0.1, 0.2, "sa_abs_rel") and is_better(1.0, None, "rmse")
    with pytest.raises(MaskdepthError, match="count"):
        is_better(3, 2, "ordering_n")
    assert parse_split_metric("ood.sa_delta1") == ("ood", "sa_delta1")
    for bad in ("iou", "train.iou", "seen.nope", "seen.ordering_n"):
        with pytest.raises(MaskdepthError, match="expected"):
            parse_split_metric(bad)


def test_markdown_table_rows_notes_and_missing_values():
    table = markdown_table([("seen", {"iou": 0.9, "ordering": 0.5, "iou_small": float("nan")}),
                            ("ood", {}), ("unseen", {"iou": None})],
                           keys=("iou", "iou_small", "ordering", "delta1"), notes={"ood": "no ood samples"})
    assert table.splitlines() == [
        "| split | IoU | ordering |",  # IoU <2% and δ1 have no finite value anywhere: dropped
        "|---|---|---|",
        "| seen | 0.900 | 0.500 |",
        "| ood | no ood samples | |",
        "| unseen | – | – |",
    ]
    rows = definitions_table({"abs_rel": 0.25, "ordering_n": 7.0}, ("abs_rel", "ordering_n", "iou")).splitlines()
    assert rows[2:] == ["| AbsRel | 0.250 | lower | mean \\|pred − gt\\| / gt |",  # pipes escaped in a cell
                        "| ordering n | 7 | (count) | images the ordering was counted on |"]
    (relief,) = definitions_table({"relief": 1.25}, ("relief",)).splitlines()[2:]
    assert relief.startswith("| relief | 1.25 | nearest 1 | ln(q90 / q10) of the predicted depths")
