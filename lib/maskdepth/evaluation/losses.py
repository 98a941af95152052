"""Training losses for the mask and depth heads, and their joint combination (`build_loss`).

The depth pixel losses compare the normalised log depth, in [0, 1] over the model's range: an
error of 10 % then costs the same at 1 m and at 50 m (what AbsRel and δ measure), SSIM gets a known
data_range and loss values compare across datasets. A depth pixel counts only where
`maskdepth.core.depth.valid_depth` says. SSIM is torchmetrics', already a dependency and
differentiable, rather than a copy to get wrong. Losses compute in float32 with autocast off: SSIM
and logs lose too much in fp16. Formulas and details: docs/evaluation.md, "Losses"."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, normalised_log_depth, valid_depth
from maskdepth.core.errors import MaskdepthError
from maskdepth.models.blocks import OUTPUTS

DEFAULT_MASK_LOSS = "bce_dice"
# l1 on t is cheap; the SSIM-based losses cost far more per CPU step (oneDNN's backward of the
# 11x11 window) and did not train better (docs/recipes.md, "Measurements behind code choices").
DEFAULT_DEPTH_LOSS = "l1"
DICE_SMOOTH = 1.0  # keeps soft Dice defined (and near 0) for an empty mask predicted empty
HUBER_BETA = 0.05  # in t units: ~30 % relative depth error, beyond which Huber turns linear
SSIM_SIGMA = 1.5  # the standard 11x11 Gaussian window
SSIM_MIN_SIDE = 11
SILOG_LAMBDA = 0.5

_LOG_MIN = math.log(DEPTH_MIN)
_LOG_SPAN = math.log(DEPTH_MAX) - math.log(DEPTH_MIN)


# --------------------------------------------------------------------------- helpers


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise MaskdepthError(f"{what}: prediction shape {tuple(a.shape)} != target shape {tuple(b.shape)}")


def _usable_depth(gt: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """`valid_depth`, with a `valid` of another shape than the ground truth refused."""
    if valid is not None and valid.shape != gt.shape:
        raise MaskdepthError(f"valid: shape {tuple(valid.shape)} != depth shape {tuple(gt.shape)}")
    return valid_depth(gt, valid)


def _prepare_depth(pred, gt, valid, what):
    """float32 (pred t, gt t, valid); invalid gt pixels are replaced so that no NaN can leak."""
    _check_same_shape(pred, gt, what)
    pred = pred.float()
    gt = gt.float()
    ok = _usable_depth(gt, valid)
    gt = torch.where(ok, gt, torch.ones_like(gt))
    # Pred is clamped only from below: the model's output is inside the range anyway, and an
    # upper clamp would silently stop the gradient of an out-of-range prediction.
    pred_t = (torch.log(pred.clamp_min(1e-6)) - _LOG_MIN) / _LOG_SPAN
    return pred_t, normalised_log_depth(gt), ok


def _masked_mean(values: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Mean over valid pixels; 0 (still attached to the graph) when there are none."""
    count = ok.sum()
    total = torch.where(ok, values, torch.zeros_like(values)).sum()
    return total / count.clamp_min(1)


def _mean_over_images(per_image: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Mean of a per-image loss [B] over the images where `has` holds; 0 (attached) when none does."""
    return torch.where(has, per_image, torch.zeros_like(per_image)).sum() / has.sum().clamp_min(1)


# --------------------------------------------------------------------------- mask losses


def bce_mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits (numerically stable form)."""
    _check_same_shape(logits, target, "mask loss")
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def dice_mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits), per image (smoothed by DICE_SMOOTH), averaged over the batch.

    Dice is insensitive to the foreground/background imbalance that lets BCE settle on
    "all background" for small objects."""
    _check_same_shape(logits, target, "mask loss")
    prob = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    inter = (prob * target).sum(1)
    dice = (2 * inter + DICE_SMOOTH) / (prob.sum(1) + target.sum(1) + DICE_SMOOTH)
    return (1 - dice).mean()


def bce_dice_mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice: per-pixel calibration from BCE, overlap from Dice."""
    return bce_mask_loss(logits, target) + dice_mask_loss(logits, target)


# --------------------------------------------------------------------------- depth losses


def l1_depth_loss(pred, gt, valid=None):
    """Mean |t_pred - t_gt| over valid pixels."""
    p, g, ok = _prepare_depth(pred, gt, valid, "l1 depth loss")
    return _masked_mean((p - g).abs(), ok)


def mse_depth_loss(pred, gt, valid=None):
    """Mean (t_pred - t_gt)^2 over valid pixels."""
    p, g, ok = _prepare_depth(pred, gt, valid, "mse depth loss")
    return _masked_mean((p - g) ** 2, ok)


def huber_depth_loss(pred, gt, valid=None, beta: float = HUBER_BETA):
    """SmoothL1 on t with threshold `beta` (HUBER_BETA: t in [0, 1] would make beta=1 plain MSE/2)."""
    p, g, ok = _prepare_depth(pred, gt, valid, "huber depth loss")
    return _masked_mean(F.smooth_l1_loss(p, g, reduction="none", beta=beta), ok)


def _ssim_map(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    if min(p.shape[-2:]) < SSIM_MIN_SIDE:
        raise MaskdepthError(
            f"ssim depth loss: images must be at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} "
            f"(got {p.shape[-2]}x{p.shape[-1]}); choose another depth loss for smaller inputs"
        )
    _, full = structural_similarity_index_measure(
        p, g, gaussian_kernel=True, sigma=SSIM_SIGMA, data_range=1.0, return_full_image=True
    )
    return full


def ssim_depth_loss(pred, gt, valid=None):
    """(1 - SSIM) / 2 on t, averaged over valid pixels; in [0, 1], 0 for a perfect prediction.

    Invalid ground-truth pixels are filled with the (detached) prediction so they add no
    structure to the windows around them and pull on nothing."""
    p, g, ok = _prepare_depth(pred, gt, valid, "ssim depth loss")
    g = torch.where(ok, g, p.detach())
    ssim = _ssim_map(p, g)
    return _masked_mean(((1 - ssim) / 2).clamp(0, 1), ok)


def _gradient_terms(p, g, ok):
    dx_ok = ok[..., :, 1:] & ok[..., :, :-1]
    dy_ok = ok[..., 1:, :] & ok[..., :-1, :]
    dx = ((p[..., :, 1:] - p[..., :, :-1]) - (g[..., :, 1:] - g[..., :, :-1])).abs()
    dy = ((p[..., 1:, :] - p[..., :-1, :]) - (g[..., 1:, :] - g[..., :-1, :])).abs()
    return _masked_mean(dx, dx_ok) + _masked_mean(dy, dy_ok)


def gradient_depth_loss(pred, gt, valid=None):
    """Mean |∂x t_pred - ∂x t_gt| + mean |∂y t_pred - ∂y t_gt| (forward differences between
    two valid pixels): rewards sharp, correctly placed depth edges."""
    p, g, ok = _prepare_depth(pred, gt, valid, "gradient depth loss")
    return _gradient_terms(p, g, ok)


def densedepth_depth_loss(pred, gt, valid=None):
    """DenseDepth (Alhashim & Wonka 2018): 1.0·(1-SSIM)/2 + 1.0·gradient + 0.1·L1, on t."""
    p, g, ok = _prepare_depth(pred, gt, valid, "densedepth depth loss")
    ssim = _ssim_map(p, torch.where(ok, g, p.detach()))
    ssim_term = _masked_mean(((1 - ssim) / 2).clamp(0, 1), ok)
    return ssim_term + _gradient_terms(p, g, ok) + 0.1 * _masked_mean((p - g).abs(), ok)


def silog_depth_loss(pred, gt, valid=None, lam: float = SILOG_LAMBDA):
    """Scale-invariant log loss (Eigen et al. 2014), per image then averaged over images:
    mean(e^2) - lam·mean(e)^2 with e = log pred - log gt over the image's valid pixels.

    With lam = 0.5 a global scale error c costs (1 - lam)·log(c)^2, half of what a plain
    log-MSE charges. Images without valid pixels are skipped."""
    _check_same_shape(pred, gt, "silog depth loss")
    ok = _usable_depth(gt.float(), valid).flatten(1)
    gt = torch.where(ok, gt.float().flatten(1), torch.ones_like(ok, dtype=torch.float32))
    err = torch.log(pred.float().flatten(1).clamp_min(1e-6)) - torch.log(gt)
    err = torch.where(ok, err, torch.zeros_like(err))
    n = ok.sum(1)
    n_safe = n.clamp_min(1)
    per_image = (err**2).sum(1) / n_safe - lam * (err.sum(1) / n_safe) ** 2
    return _mean_over_images(per_image, n > 0)


def _log_error_less_median(p, g, ok):
    """[B, N] |e - median(e)| per pixel (e = t_pred - t_gt; the median over the image's valid pixels,
    detached) and the flattened `ok`: a shift in log depth is a global scale, so this is each pixel's
    error left after the per-image median scaling that the scale-aligned metrics apply."""
    e = torch.where(ok, p - g, torch.full_like(p, float("nan"))).flatten(1)
    med = torch.nanmedian(e, dim=1, keepdim=True).values.detach()
    return (e - med).abs(), ok.flatten(1)


def _mean_over_pixels(dev, pixels):
    """Mean of `dev` [B, N] over each image's `pixels`, averaged over the images that have any."""
    n = pixels.sum(1)
    per_image = torch.where(pixels, dev, torch.zeros_like(dev)).sum(1) / n.clamp_min(1)
    return _mean_over_images(per_image, n > 0)


def _shift_free_log_error(p, g, ok):
    """Mean `_log_error_less_median` per image over its valid pixels, averaged over images that have any."""
    dev, flat_ok = _log_error_less_median(p, g, ok)
    return _mean_over_pixels(dev, flat_ok)


def l1_ssi_depth_loss(pred, gt, valid=None):
    """L1 on t (metric: learns the camera's scale where the image shows it) + the same L1
    after removing each image's median log error (structure: what is left once the scale is
    fixed, the quantity scale-aligned δ1 scores). One image does not always fix the scale;
    the second term keeps the structure gradient from being drowned by scale errors."""
    p, g, ok = _prepare_depth(pred, gt, valid, "l1_ssi depth loss")
    return _masked_mean((p - g).abs(), ok) + _shift_free_log_error(p, g, ok)


def _scale_shift_free_disparity_error(pred, gt, ok):
    """Per image, the prediction's disparity (1 / depth) aligned to the ground truth's by least-squares
    scale and shift, then the mean |aligned - gt| over the gt disparity's mean absolute deviation
    (Ranftl et al., MiDaS): blind to the camera's scale and to a disparity offset, so what it weighs
    is near structure, where disparity varies most; averaged over images that have valid pixels."""
    gt = torch.where(ok, gt.float(), torch.ones_like(gt, dtype=torch.float32))
    okf = ok.flatten(1).float()
    n = okf.sum(1)
    n_safe = n.clamp_min(1)
    x = 1.0 / pred.float().clamp_min(DEPTH_MIN).flatten(1)
    y = 1.0 / gt.float().flatten(1)
    mx, my = (x * okf).sum(1) / n_safe, (y * okf).sum(1) / n_safe
    dx, dy = (x - mx[:, None]) * okf, (y - my[:, None]) * okf
    scale = (dx * dy).sum(1) / (dx * dx).sum(1).clamp_min(1e-12)
    spread = dy.abs().sum(1) / n_safe
    err = ((scale[:, None] * dx - dy).abs().sum(1) / n_safe) / spread.clamp_min(1e-6)
    return _mean_over_images(err, n > 1)


def l1_ssid_depth_loss(pred, gt, valid=None):
    """L1 on t + the scale-and-shift-invariant L1 on disparity (`_scale_shift_free_disparity_error`):
    the MiDaS alternative to `l1_ssi`'s median-aligned log error, for the recipe ablation."""
    p, g, ok = _prepare_depth(pred, gt, valid, "l1_ssid depth loss")
    return _masked_mean((p - g).abs(), ok) + _scale_shift_free_disparity_error(pred, gt, ok)


def l1_ssi_ssid_depth_loss(pred, gt, valid=None):
    """`l1_ssi` + the disparity term of `l1_ssid`: the median-aligned log error keeps far structure,
    the scale-and-shift-aligned disparity error weighs near structure (the ablation's mix of the two)."""
    p, g, ok = _prepare_depth(pred, gt, valid, "l1_ssi_ssid depth loss")
    return (_masked_mean((p - g).abs(), ok) + _shift_free_log_error(p, g, ok)
            + _scale_shift_free_disparity_error(pred, gt, ok))


def object_depth_error(pred, gt, mask, valid=None):
    """Per image, `_log_error_less_median` (each pixel's log error less the whole image's median, so
    the object is judged against its own scene, not the camera's scale) averaged over the
    ground-truth mask's valid pixels; averaged over the images that show an object.

    A per-pixel loss weighs an object by its area, a few per cent of the image: a net can leave it at
    the depth of what surrounds it in the picture (a lampshade at the wall's depth) and lose little.
    Here every object counts as much as every image, which is what the object-level measures
    (depth in the mask, ordering) score."""
    p, g, ok = _prepare_depth(pred, gt, valid, "object depth term")
    _check_same_shape(mask, gt, "object depth term (mask, gt)")
    dev, flat_ok = _log_error_less_median(p, g, ok)
    return _mean_over_pixels(dev, flat_ok & (mask > 0.5).flatten(1))


GRADIENT_SCALES = 4  # multi-scale gradient matching at strides 1, 2, 4, 8 (MiDaS uses 4)


def _multiscale_gradient(p, g, ok):
    total = p.new_zeros(())
    for _ in range(GRADIENT_SCALES):
        if min(p.shape[-2:]) < 2:
            break
        total = total + _gradient_terms(p, g, ok)
        okf = ok.float()
        weight = F.avg_pool2d(okf, 2)
        p = F.avg_pool2d(p * okf, 2) / weight.clamp_min(1e-6)
        g = F.avg_pool2d(g * okf, 2) / weight.clamp_min(1e-6)
        ok = weight > 0.999
    return total / GRADIENT_SCALES


def l1_msgrad_depth_loss(pred, gt, valid=None):
    """L1 on t + multi-scale gradient matching of t (Ranftl et al., MiDaS): the gradient of
    the log-depth error is blind to scale, and its coarse scales see the layout (where the
    floor recedes, where an object stands out of it) that one-pixel gradients miss."""
    p, g, ok = _prepare_depth(pred, gt, valid, "l1_msgrad depth loss")
    return _masked_mean((p - g).abs(), ok) + _multiscale_gradient(p, g, ok)


MASK_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": bce_mask_loss,
    "dice": dice_mask_loss,
    "bce_dice": bce_dice_mask_loss,
}

DEPTH_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "l1": l1_depth_loss,
    "mse": mse_depth_loss,
    "huber": huber_depth_loss,
    "ssim": ssim_depth_loss,
    "gradient": gradient_depth_loss,
    "densedepth": densedepth_depth_loss,
    "silog": silog_depth_loss,
    "l1_ssi": l1_ssi_depth_loss,
    "l1_msgrad": l1_msgrad_depth_loss,
    "l1_ssid": l1_ssid_depth_loss,
    "l1_ssi_ssid": l1_ssi_ssid_depth_loss,
}


def _lookup(registry: Mapping[str, Callable], name: str, argument: str) -> Callable:
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise MaskdepthError(f"unknown {argument} {name!r}; choose one of {', '.join(registry)}") from None


def get_mask_loss(name: str) -> Callable:
    return _lookup(MASK_LOSSES, name, "mask_loss")


def get_depth_loss(name: str) -> Callable:
    return _lookup(DEPTH_LOSSES, name, "depth_loss")


# --------------------------------------------------------------------------- joint


class MaskDepthLoss(nn.Module):
    """Task losses combined into one total.

    Fixed weighting: total = Σ w_i·L_i.
    Uncertainty weighting (Kendall, Gal & Cipolla 2018), in the common simplified form
    total = Σ exp(-s_i)·L_i + s_i with a learned s_i = log σ_i² per task (initialised to 0,
    i.e. weight 1). It drops the paper's 1/2 factor for regression tasks, which only
    rescales s_i, and treats both tasks alike. The total may go negative as the losses shrink;
    that is expected. The s_i are parameters of this module: give `criterion.parameters()` to
    the optimizer and save `criterion.state_dict()` with the checkpoint.

    `object_weight` > 0 adds `object_depth_error` (needs the target's "mask") to the depth
    task's loss with that weight; it is also reported alone as "object".
    """

    def __init__(
        self,
        tasks: tuple[str, ...],
        mask_loss: str = DEFAULT_MASK_LOSS,
        depth_loss: str = DEFAULT_DEPTH_LOSS,
        weights: Mapping[str, float] | None = None,
        uncertainty: bool = False,
        object_weight: float = 0.0,
    ):
        super().__init__()
        self.tasks = tuple(tasks)
        if not (math.isfinite(object_weight) and object_weight >= 0):
            raise MaskdepthError(f"object_weight: must be finite and >= 0, got {object_weight}")
        self.object_weight = float(object_weight) if "depth" in self.tasks else 0.0
        self.mask_loss_name = mask_loss
        self.depth_loss_name = depth_loss
        self._loss_fns = {}
        if "mask" in self.tasks:
            self._loss_fns["mask"] = get_mask_loss(mask_loss)
        if "depth" in self.tasks:
            self._loss_fns["depth"] = get_depth_loss(depth_loss)
        self.weights = _check_weights(weights, self.tasks, uncertainty)
        self.uncertainty = bool(uncertainty)
        if self.uncertainty:
            self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in self.tasks})

    def forward(self, pred: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict:
        for task in self.tasks:
            for side, d in (("pred", pred), ("target", target)):
                if task not in d:
                    raise MaskdepthError(
                        f"loss for task {task!r}: {side} has no {task!r} entry (keys: {', '.join(d)})"
                    )
        if self.object_weight and "mask" not in target:
            raise MaskdepthError("object_weight needs the ground-truth mask: the target has no 'mask' entry")
        out = {}
        total = None
        for task in self.tasks:
            p = pred[task]
            with torch.autocast(device_type=p.device.type, enabled=False):
                loss = self._loss_fns[task](p, target[task])
                if task == "depth" and self.object_weight:
                    out["object"] = object_depth_error(p, target["depth"], target["mask"])
                    loss = loss + self.object_weight * out["object"]
                if self.uncertainty:
                    s = self.log_vars[task]
                    term = torch.exp(-s) * loss + s
                else:
                    term = self.weights[task] * loss
            out[task] = loss
            total = term if total is None else total + term
        out["loss"] = total
        return out

    @torch.no_grad()
    def task_weights(self) -> dict[str, float]:
        """Current multiplier of each task loss (exp(-s_i) under uncertainty), for logging."""
        if self.uncertainty:
            return {t: float(torch.exp(-self.log_vars[t])) for t in self.tasks}
        return dict(self.weights)

    def extra_repr(self) -> str:
        names = {"mask": self.mask_loss_name, "depth": self.depth_loss_name}
        parts = [f"{t}={names[t]}" for t in self.tasks]
        if self.object_weight:
            parts.append(f"object_weight={self.object_weight}")
        return ", ".join(parts) + (", uncertainty" if self.uncertainty else f", weights={self.weights}")


def _check_weights(weights, tasks, uncertainty) -> dict[str, float]:
    given = dict(weights or {})
    unknown = set(given) - set(OUTPUTS)
    if unknown:
        raise MaskdepthError(f"weights: unknown task(s) {sorted(unknown)}; use {', '.join(OUTPUTS)}")
    out = {}
    for task in tasks:
        w = given.get(task, 1.0)
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise MaskdepthError(f"weights[{task!r}]: expected a number, got {w!r}") from None
        if not math.isfinite(w) or w < 0:
            raise MaskdepthError(f"weights[{task!r}]: must be finite and >= 0, got {w}")
        out[task] = w
    if uncertainty and any(w != 1.0 for w in out.values()):
        raise MaskdepthError(
            f"weights {out} and uncertainty=True exclude each other: uncertainty learns the weights"
        )
    return out


def build_loss(
    task: str = "joint",
    mask_loss: str = DEFAULT_MASK_LOSS,
    depth_loss: str = DEFAULT_DEPTH_LOSS,
    weights: Mapping[str, float] | None = None,
    uncertainty: bool = False,
    object_weight: float = 0.0,
) -> MaskDepthLoss:
    """The training criterion for `task` ("joint", "mask" or "depth").

    `criterion(pred, target)` -> {"loss": total to backprop, "mask": ..., "depth": ...}
    (one entry per task present, unweighted)."""
    tasks = {"joint": ("mask", "depth"), "mask": ("mask",), "depth": ("depth",)}
    if task not in tasks:
        raise MaskdepthError(f"unknown task {task!r}; choose one of {', '.join(tasks)}")
    if uncertainty and task != "joint":
        raise MaskdepthError(f"uncertainty weighting needs two tasks; task is {task!r}")
    return MaskDepthLoss(tasks[task], mask_loss, depth_loss, weights, uncertainty, object_weight)
