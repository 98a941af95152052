"""Edge-aware upsampling: the network's low-resolution outputs brought to the image's resolution.

Why: bilinear upsampling of outputs made at the working size gives edges about one working pixel
wide, while the full-resolution image at hand shows where the edges are. The fast guided filter
(He & Sun, 2015) fits the output as a linear function of the guide's colour at low resolution and
applies the upsampled coefficients to the full-resolution image: edges follow the image's, flat
regions are smoothed, never noisier. Used by the predictor for mask logits and log-depth
(`"bilinear"` stays available); large targets are computed in bands of rows.
How it works and why it is the default: docs/predict.md, "Guided upsampling"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

UPSAMPLE_METHODS = ("guided", "bilinear")
GUIDED_RADIUS = 4  # window (2r+1)^2 at the source (working) resolution: 9 px of 64
# eps in squared guide units (guide in [0, 1]): small for the mask (edges as sharp as the image's),
# 10x larger for depth, which then copies far less of the surfaces' texture (bench/upsample.py scores both)
GUIDED_EPS_MASK = 1e-4
GUIDED_EPS_DEPTH = 1e-3
BAND_PIXELS = 1 << 22  # output pixels per band of rows (about 4 Mpx)


def bilinear(values: torch.Tensor, size) -> torch.Tensor:
    """[B,C,h,w] -> [B,C,*size], bilinear (align_corners False), the plain upsampling."""
    if tuple(values.shape[-2:]) == tuple(size):
        return values
    return F.interpolate(values, size=tuple(size), mode="bilinear", align_corners=False)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel of [N,C,h,w]; windows are cut at the border."""
    if radius <= 0:
        return x
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def bilinear_matrix(n_out: int, n_in: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """[n_out, n_in] weights of 1-D bilinear resampling, exactly as F.interpolate (align_corners False)."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = src - i0
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    matrix.index_put_((rows, i0), 1.0 - w1, accumulate=True)
    matrix.index_put_((rows, i1), w1, accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def _eps(eps, channels: int, device) -> torch.Tensor:
    """eps: one value, or one per channel -> float64 [C]."""
    values = torch.as_tensor(eps, dtype=torch.float64, device=device).reshape(-1)
    if values.numel() not in (1, channels) or not bool((values > 0).all()):
        raise ValueError(f"eps: one positive value or one per channel ({channels}), got {eps!r}")
    return values.expand(channels)


def guided_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int, eps):
    """The guided filter's local linear model of `src` [B,C,h,w] in `guide` [B,G,h,w] (same size).

    `eps`: one value, or one per channel of `src`. Returns (a [B,C,G,h,w], b [B,C,h,w]),
    already averaged over the windows, so that the filtered output is
    sum_g a[:, :, g] * guide[:, g] + b. Computed in float64 (G = 3 solves a 3x3 system per
    pixel and channel: cheap at the working size).
    """
    guide = guide.double()
    src = src.double()
    n, channels, h, w = src.shape
    g = guide.shape[1]
    eps = _eps(eps, channels, src.device)
    mean_i = box_mean(guide, radius)  # [B,G,h,w]
    mean_p = box_mean(src, radius)  # [B,C,h,w]
    products = (guide[:, None] * src[:, :, None]).reshape(n, channels * g, h, w)
    cov_ip = box_mean(products, radius).reshape(n, channels, g, h, w) - mean_p[:, :, None] * mean_i[:, None]
    if g == 1:
        var_i = box_mean(guide * guide, radius) - mean_i * mean_i  # [B,1,h,w]
        a = cov_ip / (var_i[:, None] + eps[None, :, None, None, None])
    else:
        outer = (guide[:, :, None] * guide[:, None]).reshape(n, g * g, h, w)
        sigma = box_mean(outer, radius).reshape(n, g, g, h, w) - mean_i[:, :, None] * mean_i[:, None]
        eye = torch.eye(g, dtype=sigma.dtype, device=sigma.device)
        sigma = sigma.permute(0, 3, 4, 1, 2)[:, None] + eps[None, :, None, None, None, None] * eye  # [B,C,h,w,G,G]
        # solve sigma a = cov per pixel and channel
        a = torch.linalg.solve(sigma, cov_ip.permute(0, 1, 3, 4, 2)[..., None])[..., 0]  # [B,C,h,w,G]
        a = a.permute(0, 1, 4, 2, 3)  # [B,C,G,h,w]
    b = mean_p - (a * mean_i[:, None]).sum(dim=2)
    a = box_mean(a.reshape(n, channels * g, h, w), radius).reshape(n, channels, g, h, w)
    return a, box_mean(b, radius)


def guided_upsample(src: torch.Tensor, guide: torch.Tensor, *, radius: int = GUIDED_RADIUS,
                    eps=GUIDED_EPS_MASK, guide_small: torch.Tensor | None = None) -> torch.Tensor:
    """`src` [B,C,h,w] (e.g. mask logits, log-depth) -> [B,C,H,W] following the edges of `guide`.

    `guide`: [B,G,H,W] with G = 1 (grey) or 3 (RGB), values in [0, 1], at the target size.
    `eps`: one value, or one per channel of `src` (e.g. (GUIDED_EPS_MASK, GUIDED_EPS_DEPTH)).
    `guide_small`: the guide at the source size (default: `guide` resized bilinearly with
    antialiasing, as `maskdepth.prediction.predictor` brings images to the working size). A target no
    larger than the source (on both sides) gets plain bilinear resizing.
    """
    if src.ndim != 4 or guide.ndim != 4 or guide.shape[0] != src.shape[0] or guide.shape[1] not in (1, 3):
        raise ValueError(f"guided_upsample: src [B,C,h,w] and guide [B,1|3,H,W], got {tuple(src.shape)} "
                         f"and {tuple(guide.shape)}")
    (h, w), (height, width) = src.shape[-2:], guide.shape[-2:]
    if height <= h and width <= w:
        return bilinear(src, (height, width))
    guide = guide.to(device=src.device, dtype=torch.float32)
    if guide_small is None:
        guide_small = F.interpolate(guide, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    # fitted on the CPU (float64, a few kB at the working size; MPS has no float64), applied on src's device
    a, b = guided_coefficients(guide_small.detach().cpu(), src.detach().cpu(), radius, eps)
    a, b = a.float().to(src.device), b.float().to(src.device)
    n, channels, g = a.shape[:3]
    rows = bilinear_matrix(height, h, device=src.device)  # [H, h]: the vertical half of bilinear
    out = torch.empty(n, channels, height, width, dtype=src.dtype, device=src.device)
    step = max(1, BAND_PIXELS // width)
    for top in range(0, height, step):
        band = rows[top : top + step]
        nb = band.shape[0]
        # rows by the matrix, then columns by F.interpolate (its height unchanged: exactly bilinear)
        a_up = F.interpolate((band @ a).reshape(n, channels * g, nb, w), size=(nb, width), mode="bilinear",
                             align_corners=False).reshape(n, channels, g, nb, width)
        b_up = F.interpolate(band @ b, size=(nb, width), mode="bilinear", align_corners=False)
        out[:, :, top : top + step] = ((a_up * guide[:, None, :, top : top + step]).sum(dim=2) + b_up).to(src.dtype)
    return out
