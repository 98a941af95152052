"""Validation metrics for masks and depth, accumulated over a whole dataset.

The meters keep *sums* (float64 tensors, on the device of the data they were given) and
divide once at the end, so a dataset's IoU is TP / (TP + FP + FN) over all its pixels and
its RMSE is sqrt(Σ err² / N pixels): not a mean of per-batch values, which would weigh
small last batches and nearly empty images wrongly. `all_reduce()` sums the state over
torch.distributed ranks, so DDP validation on shards gives the full-dataset numbers.

Depth metrics follow monodepth2's `compute_depth_errors` definitions over valid pixels
(ground truth > 0 and finite), with the prediction clamped to [DEPTH_MIN, DEPTH_MAX] as its
evaluation does; `rmse_over_std` divides the RMSE by the (population) standard deviation of
the ground truth over the same pixels, so numbers compare across datasets of different
depth spread.
"""

from __future__ import annotations

import math

import torch

from maskdepth.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.errors import MaskdepthError

MASK_KEYS = ("iou", "dice", "pixel_acc")
DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3", "rmse_over_std")
# Sums kept per pixel set; n is the number of valid pixels.
_DEPTH_SUMS = ("n", "abs_rel", "sq_rel", "sq_err", "sq_log", "log10", "delta1", "delta2", "delta3", "gt", "gt_sq")


def _check_shapes(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise MaskdepthError(f"{names}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() < 2:
        raise MaskdepthError(f"{names}: expected batched tensors [B, ...], got shape {tuple(a.shape)}")


# --------------------------------------------------------------------------- mask


def _confusion(logits: torch.Tensor, target: torch.Tensor, dims) -> torch.Tensor:
    """[..., 4] float64 counts TP, FP, FN, TN (prediction: sigmoid(logits) > 0.5, i.e. logits > 0)."""
    _check_shapes(logits, target, "mask metrics (logits, target)")
    pred = logits.detach() > 0
    truth = target.detach() > 0.5
    tp = (pred & truth).sum(dims)
    fp = (pred & ~truth).sum(dims)
    fn = (~pred & truth).sum(dims)
    tn = (~pred & ~truth).sum(dims)
    return torch.stack([tp, fp, fn, tn], dim=-1).double()


def _mask_scores(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """IoU, Dice, pixel accuracy from [..., 4] counts; empty prediction vs empty truth scores 1."""
    tp, fp, fn, tn = counts.unbind(-1)
    union = tp + fp + fn
    one = torch.ones_like(tp)
    iou = torch.where(union > 0, tp / union.clamp_min(1), one)
    dice = torch.where(union > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), one)
    return {"iou": iou, "dice": dice, "pixel_acc": (tp + tn) / (tp + fp + fn + tn).clamp_min(1)}


def mask_scores_per_sample(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"iou", "dice", "pixel_acc"} -> [B] float64 tensors, one score per image."""
    dims = tuple(range(1, logits.dim()))
    return _mask_scores(_confusion(logits, target, dims))


class _Meter:
    """Float64 sum state with reset/all_reduce; subclasses define `_size` and `compute`."""

    _size = 0

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.state = torch.zeros(self._size, dtype=torch.float64)

    def _add(self, sums: torch.Tensor) -> None:
        if self.state.device != sums.device:
            self.state = self.state.to(sums.device)
        self.state += sums

    def all_reduce(self) -> None:
        """Sum the state over all ranks (no-op unless torch.distributed is initialised).

        Every rank must call it, also ranks that saw no data."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
        state = self.state.to(device)
        dist.all_reduce(state, op=dist.ReduceOp.SUM)
        self.state = state


class MaskMeter(_Meter):
    """Dataset-wide IoU, Dice and pixel accuracy of the foreground mask at threshold 0.5."""

    _size = 4  # TP, FP, FN, TN

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self._add(_confusion(logits, target, tuple(range(logits.dim()))))

    def compute(self) -> dict[str, float]:
        if self.state.sum() == 0:
            raise MaskdepthError("MaskMeter.compute(): no pixels were accumulated (call update first)")
        return {k: float(v) for k, v in _mask_scores(self.state).items()}


# --------------------------------------------------------------------------- depth


def _depth_error_sums(pred, gt, valid, dims) -> torch.Tensor:
    """[..., len(_DEPTH_SUMS)] float64 sums over valid pixels, reduced over `dims`."""
    _check_shapes(pred, gt, "depth metrics (pred, gt)")
    gt = gt.detach().double()
    ok = torch.isfinite(gt) & (gt > 0)
    if valid is not None:
        _check_shapes(valid, gt, "depth metrics (valid, gt)")
        ok = ok & valid.bool()
    gt = torch.where(ok, gt, torch.ones_like(gt))
    pred = pred.detach().double().clamp(DEPTH_MIN, DEPTH_MAX)
    # A NaN prediction stays NaN (and shows in the metrics); invalid pixels never count.
    pred = torch.where(ok, pred, torch.ones_like(pred))
    diff = pred - gt
    log_diff = torch.log(pred) - torch.log(gt)
    ratio = torch.maximum(pred / gt, gt / pred)
    okd = ok.double()
    terms = [
        okd,
        diff.abs() / gt,
        diff**2 / gt,
        diff**2,
        log_diff**2,
        (torch.log10(pred) - torch.log10(gt)).abs(),
        (ratio < 1.25).double(),
        (ratio < 1.25**2).double(),
        (ratio < 1.25**3).double(),
        gt,
        gt**2,
    ]
    return torch.stack([(t * okd).sum(dims) for t in terms], dim=-1)


def _depth_errors_from_sums(sums: torch.Tensor) -> dict[str, torch.Tensor]:
    """Final metrics from `_depth_error_sums` ([..., K]); NaN where a set has no valid pixel."""
    s = dict(zip(_DEPTH_SUMS, sums.unbind(-1), strict=True))
    n = s["n"]
    nan = torch.full_like(n, math.nan)
    n_safe = n.clamp_min(1)

    def mean(key):
        return torch.where(n > 0, s[key] / n_safe, nan)

    rmse = mean("sq_err").sqrt()
    gt_mean = mean("gt")
    gt_std = (mean("gt_sq") - gt_mean**2).clamp_min(0).sqrt()
    return {
        "abs_rel": mean("abs_rel"),
        "sq_rel": mean("sq_rel"),
        "rmse": rmse,
        "rmse_log": mean("sq_log").sqrt(),
        "log10": mean("log10"),
        "delta1": mean("delta1"),
        "delta2": mean("delta2"),
        "delta3": mean("delta3"),
        # Constant ground truth has no spread: the ratio is undefined, not infinite.
        "rmse_over_std": torch.where(gt_std > 0, rmse / gt_std.clamp_min(1e-300), nan),
    }


def compute_depth_errors(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict:
    """All depth metrics over the valid pixels of (pred, gt), as floats (monodepth2's set,
    plus rmse_over_std). NaN values if no pixel is valid."""
    dims = tuple(range(pred.dim()))
    return {k: float(v) for k, v in _depth_errors_from_sums(_depth_error_sums(pred, gt, valid, dims)).items()}


def depth_errors_per_sample(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Depth metrics per image: {key: [B] float64}; NaN for an image without valid pixels."""
    dims = tuple(range(1, pred.dim()))
    return _depth_errors_from_sums(_depth_error_sums(pred, gt, valid, dims))


class DepthMeter(_Meter):
    """Dataset-wide depth metrics over all valid pixels (see the module docstring)."""

    _size = len(_DEPTH_SUMS)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        self._add(_depth_error_sums(pred, gt, valid, tuple(range(pred.dim()))))

    def compute(self) -> dict[str, float]:
        if self.state[0] == 0:
            raise MaskdepthError("DepthMeter.compute(): no valid depth pixels were accumulated")
        return {k: float(v) for k, v in _depth_errors_from_sums(self.state).items()}
