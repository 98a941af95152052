"""Validation metrics for masks and depth: their definitions and their meters.

`MaskMeter` and `DepthMeter` keep sums and divide once at the end, so a dataset's IoU or RMSE is
over all its pixels, not a mean of per-batch values (which would weigh small last batches and
nearly empty images wrongly); per-image quantities (mean IoU, scale alignment, ordering) are summed
image by image, and `all_reduce()` makes DDP shards give the full-dataset numbers. Depth follows
monodepth2's definitions over valid pixels, beside scale-aligned, object-region and ordering
numbers; keys, labels and directions are the catalogue's (`maskdepth.evaluation.catalogue`).
Every definition: docs/evaluation.md, "Metrics"."""

from __future__ import annotations

import math

import torch

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, valid_depth
from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.catalogue import ORDER_PAIRS, ORDER_TIE, RELIEF_QUANTILES

# Object-size bins by GT mask area as a fraction of the image: small < 2 % <= medium <= 10 % < large.
SIZE_BINS = ("small", "medium", "large")
SIZE_BIN_EDGES = (0.02, 0.10)
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


def size_bin(area_fraction: torch.Tensor) -> torch.Tensor:
    """Object-size bin of each image from its GT mask area / image area: -1 (empty mask),
    0 small (< 2 %), 1 medium (2 % to 10 %), 2 large (> 10 %)."""
    small, large = SIZE_BIN_EDGES
    a = area_fraction
    out = torch.where(a < small, 0, torch.where(a <= large, 1, 2))
    return torch.where(a > 0, out, -1)


def _mask_image_sums(counts: torch.Tensor) -> torch.Tensor:
    """From per-image counts [B, 4]: [images, Σ per-image IoU, then per size bin TP, FP, FN, images]."""
    iou = _mask_scores(counts)["iou"]
    tp, _, fn, _ = counts.unbind(-1)
    bins = size_bin((tp + fn) / counts.sum(-1).clamp_min(1))
    parts = [counts.new_tensor([float(counts.shape[0])]), iou.sum().view(1)]
    for b in range(len(SIZE_BINS)):
        sel = (bins == b).double()
        parts += [(counts[:, :3] * sel[:, None]).sum(0), sel.sum().view(1)]
    return torch.cat(parts)


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
    """Dataset-wide IoU, Dice and pixel accuracy of the foreground mask at threshold 0.5, the
    mean per-image IoU and the pooled IoU per object-size bin (see the module docstring)."""

    # TP, FP, FN, TN; images, Σ per-image IoU; per size bin: TP, FP, FN, images
    _size = 4 + 2 + 4 * len(SIZE_BINS)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        per_image = _confusion(logits, target, tuple(range(1, logits.dim())))
        self._add(torch.cat([per_image.sum(0), _mask_image_sums(per_image)]))

    def compute(self) -> dict[str, float]:
        if self.state[:4].sum() == 0:
            raise MaskdepthError("MaskMeter.compute(): no pixels were accumulated (call update first)")
        out = {k: float(v) for k, v in _mask_scores(self.state[:4]).items()}
        images, iou_sum = float(self.state[4]), float(self.state[5])
        out["miou"] = iou_sum / images if images else math.nan
        counts = {}
        for b, name in enumerate(SIZE_BINS):
            tp, fp, fn, n = (float(v) for v in self.state[6 + 4 * b:10 + 4 * b])
            # A bin without images has no IoU (a binned image has GT pixels, so its union is never empty).
            out[f"iou_{name}"] = tp / (tp + fp + fn) if n else math.nan
            counts[f"iou_{name}_n"] = n
        return out | counts


# --------------------------------------------------------------------------- depth


def _depth_error_sums(pred, gt, valid, dims) -> torch.Tensor:
    """[..., len(_DEPTH_SUMS)] float64 sums over valid pixels, reduced over `dims`."""
    _check_shapes(pred, gt, "depth metrics (pred, gt)")
    gt = gt.detach().double()
    if valid is not None:
        _check_shapes(valid, gt, "depth metrics (valid, gt)")
    ok = valid_depth(gt, valid)
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


def pairwise_ordering(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None, *,
                      pairs: int = ORDER_PAIRS, seed: int = 0) -> float:
    """Fraction of random pairs of valid pixels that `pred` orders as `gt` does (nearer / farther),
    over pairs whose ground truths differ by more than ORDER_TIE; a predicted tie counts half.
    The pairs are drawn with `seed`, so the same maps always give the same number."""
    g = gt.detach().double().flatten()
    ok = valid_depth(g, None if valid is None else valid.flatten())
    index = torch.nonzero(ok).flatten()
    if index.numel() < 2:
        return math.nan
    rng = torch.Generator().manual_seed(seed)
    draw = index[torch.randint(index.numel(), (2, 4 * pairs), generator=rng)]
    gi, gj = g[draw[0]], g[draw[1]]
    keep = (gi - gj).abs() > ORDER_TIE * torch.minimum(gi, gj)
    first, second = draw[0][keep][:pairs], draw[1][keep][:pairs]
    if first.numel() == 0:
        return math.nan
    p = pred.detach().double().flatten()
    truth = torch.sign(g[first] - g[second])
    said = torch.sign(p[first] - p[second])
    return float(((said == truth).double() + 0.5 * (said == 0).double()).mean())


def depth_relief(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """How far the prediction spreads the scene's depths against the ground truth:
    ln(q90 / q10) of `pred` over ln(q90 / q10) of `gt`, the quantiles over the valid pixels
    (RELIEF_QUANTILES). 1 is the true spread; above 1 the prediction stretches the scene (near
    things too near against far ones), below 1 it flattens it. A global scale does not change it.
    NaN where no pixel is valid or the ground truth has no spread."""
    g = gt.detach().double().flatten()
    ok = valid_depth(g, None if valid is None else valid.flatten())
    if int(ok.sum()) < 2:
        return math.nan
    p = pred.detach().double().flatten()[ok].clamp_min(DEPTH_MIN)
    q = torch.tensor(RELIEF_QUANTILES, dtype=torch.float64)
    # "lower" picks sample values, so any increasing map of the depths maps the quantiles exactly
    g_lo, g_hi = torch.quantile(g[ok], q, interpolation="lower")
    p_lo, p_hi = torch.quantile(p, q, interpolation="lower")
    spread = math.log(float(g_hi / g_lo))
    return math.log(float(p_hi / p_lo)) / spread if spread > 0 else math.nan


def _per_image_median(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """[B] median of each image's values where `keep` (NaN where nothing is kept)."""
    b = values.shape[0]
    return torch.nanmedian(torch.where(keep, values, math.nan).reshape(b, -1), dim=1).values


def _medians(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None, what: str):
    """(clamped prediction, valid pixels, per-image median of each over them), float64: what
    scale alignment and the depth-scale ratio are both made of."""
    _check_shapes(pred, gt, what)
    g = gt.detach().double()
    ok = valid_depth(g, valid)
    p = pred.detach().double().clamp(DEPTH_MIN, DEPTH_MAX)
    return p, ok, _per_image_median(p, ok), _per_image_median(g, ok)


def scale_aligned(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Each image's prediction times median(gt) / median(pred) over its valid pixels (float64).

    The prediction is clamped to [DEPTH_MIN, DEPTH_MAX] first, as the metrics clamp it; an
    image with a NaN prediction at a valid pixel gets a NaN scale (so it shows in the metrics)."""
    p, ok, med_pred, med_gt = _medians(pred, gt, valid, "scale alignment (pred, gt)")
    scale = med_gt / med_pred
    broken = (torch.isnan(p) & ok).reshape(p.shape[0], -1).any(1)
    scale = torch.where(broken, math.nan, scale)
    return p * scale.view(-1, *([1] * (p.dim() - 1)))


def depth_scale_ratio(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """[B] float64: each image's median(pred) / median(gt) over its valid pixels, the prediction
    clamped as the metrics clamp it: the depth-scale error that scale alignment removes (1: the
    right scale; the inverse of `scale_aligned`'s factor). NaN for an image without valid pixels."""
    _, _, med_pred, med_gt = _medians(pred, gt, valid, "depth-scale ratio (pred, gt)")
    return med_pred / med_gt


def ordering_terms(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordering accuracy per image: ([B] counted, [B] correct) booleans; tensors [B, 1, H, W] or [B, H, W].

    The object is the ground-truth mask (all its components) restricted to valid depth
    pixels; its predicted depth is the median prediction over it. The *reference* is "the
    ground just behind its foot", defined from the ground truth alone so any dataset works:
    with `foot` the lowest image row holding an object pixel, `top` the highest, `left` and
    `right` its outermost columns, h = foot - top + 1 and w = right - left + 1,

    * rows foot - max(2, h // 4) .. foot (inclusive),
    * columns left - w // 2 .. right + w // 2 (the object's extent widened by half its width
      on each side, clipped to the image),
    * pixels outside the GT mask, with valid GT depth greater than the median GT depth of
      the object (so only what lies behind it, not ground in front of it, is kept).

    Its predicted depth is the median prediction over those pixels. An image is counted when
    both the object and the reference are non-empty, and correct when the object's predicted
    depth is smaller than the reference's (a NaN prediction in either region is wrong).
    Predictions are clamped to [DEPTH_MIN, DEPTH_MAX] first.
    """
    _check_shapes(pred, gt, "ordering (pred, gt)")
    _check_shapes(mask, gt, "ordering (mask, gt)")
    b, (h, w) = gt.shape[0], gt.shape[-2:]
    if gt.dim() < 3 or gt[0].numel() != h * w:
        raise MaskdepthError(f"ordering: expected [B, 1, H, W] or [B, H, W] tensors, got {tuple(gt.shape)}")
    g = gt.detach().double().reshape(b, h, w)
    p = pred.detach().double().clamp(DEPTH_MIN, DEPTH_MAX).reshape(b, h, w)
    in_mask = mask.detach().reshape(b, h, w) > 0.5
    ok = valid_depth(g, None if valid is None else valid.reshape(b, h, w))
    obj = in_mask & ok
    rows = torch.arange(h, device=g.device)
    cols = torch.arange(w, device=g.device)
    row_any, col_any = obj.any(2), obj.any(1)  # [B, H], [B, W]
    top = torch.where(row_any, rows, h).amin(1)
    foot = torch.where(row_any, rows, -1).amax(1)
    left = torch.where(col_any, cols, w).amin(1)
    right = torch.where(col_any, cols, -1).amax(1)
    band = ((foot - top + 1) // 4).clamp_min(2)
    widen = (right - left + 1) // 2
    in_rows = (rows >= (foot - band)[:, None]) & (rows <= foot[:, None])
    in_cols = (cols >= (left - widen)[:, None]) & (cols <= (right + widen)[:, None])
    obj_gt = _per_image_median(g, obj)
    ref = in_rows[:, :, None] & in_cols[:, None, :] & ~in_mask & ok & (g > obj_gt[:, None, None])
    counted = obj.flatten(1).any(1) & ref.flatten(1).any(1)
    nan_pred = (torch.isnan(p) & (obj | ref)).flatten(1).any(1)
    correct = counted & ~nan_pred & (_per_image_median(p, obj) < _per_image_median(p, ref))
    return counted, correct


# Layout of DepthMeter's state: metric sums, scale-aligned sums, object-region sums, ordering counts.
_N = len(_DEPTH_SUMS)
_ORDER = 3 * _N  # counted, correct


def _all_depth_sums(pred, gt, valid, mask, per_image: bool) -> torch.Tensor:
    """[B, 3 * len(_DEPTH_SUMS) + 2] per image, or summed over the batch when not `per_image`."""
    dims = tuple(range(1, pred.dim())) if per_image else tuple(range(pred.dim()))
    parts = [
        _depth_error_sums(pred, gt, valid, dims),
        _depth_error_sums(scale_aligned(pred, gt, valid), gt, valid, dims),
    ]
    if mask is None:
        shape = (pred.shape[0], _N + 2) if per_image else (_N + 2,)
        parts.append(torch.zeros(shape, dtype=torch.float64, device=gt.device))
    else:
        _check_shapes(mask, gt, "depth metrics (mask, gt)")
        inside = mask.detach() > 0.5
        parts.append(_depth_error_sums(pred, gt, inside if valid is None else inside & valid.bool(), dims))
        counted, correct = ordering_terms(pred, gt, mask, valid)
        order = torch.stack([counted, correct], dim=-1).double()
        parts.append(order if per_image else order.sum(0))
    return torch.cat(parts, dim=-1)


def _depth_results(sums: torch.Tensor) -> dict[str, torch.Tensor]:
    metric = _depth_errors_from_sums(sums[..., :_N])
    aligned = _depth_errors_from_sums(sums[..., _N:2 * _N])
    inside = _depth_errors_from_sums(sums[..., 2 * _N:3 * _N])
    counted, correct = sums[..., _ORDER], sums[..., _ORDER + 1]
    return {
        **metric,
        **{f"sa_{k}": aligned[k] for k in ("abs_rel", "rmse", "delta1")},
        **{f"obj_{k}": inside[k] for k in ("abs_rel", "delta1")},
        "ordering": torch.where(counted > 0, correct / counted.clamp_min(1), torch.full_like(counted, math.nan)),
        "ordering_n": counted,
    }


def depth_errors_per_sample(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None, mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Depth metrics per image: {key: [B] float64}; NaN for an image without valid pixels.

    With the ground-truth `mask`, also the object-region metrics and `ordering` (1 correct,
    0 wrong, NaN not counted); without it those are NaN."""
    results = _depth_results(_all_depth_sums(pred, gt, valid, mask, per_image=True))
    results.pop("ordering_n")
    return results


class DepthMeter(_Meter):
    """Dataset-wide depth metrics over all valid pixels (see the module docstring).

    `update(pred, gt, valid=None, mask=None)`: give the ground-truth foreground `mask` for the
    object-region metrics and the ordering accuracy (NaN in `compute()` when never given)."""

    _size = 3 * _N + 2

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None,
               mask: torch.Tensor | None = None) -> None:
        self._add(_all_depth_sums(pred, gt, valid, mask, per_image=False))

    def compute(self) -> dict[str, float]:
        if self.state[0] == 0:
            raise MaskdepthError("DepthMeter.compute(): no valid depth pixels were accumulated")
        return {k: float(v) for k, v in _depth_results(self.state).items()}
