"""Photometric augmentation of whole batches on the training device, labels untouched.

A network that scores well on one renderer's colours, contrast and sharpness but fails on another
camera's has learnt the renderer. Each sample gets its own brightness, contrast, saturation, colour
cast, gamma, blur or softening and sensor noise, the same for its `image` and `bg` (one camera took
both). Parameters are a pure function of (seed, epoch, sample index), so a resumed run augments
exactly as an uninterrupted one; they are applied to the collated batch on its device, which is
cheaper than the per-sample ColorJitter path (still there: `build_augment(colour=...)`).
How: docs/data.md, "Augmentation"."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from maskdepth.augment import IMAGE_KEYS
from maskdepth.world.textures import hash_uniform

GREY = (0.299, 0.587, 0.114)  # luma weights (sum 1)
# Ranges at strength 1 (scaled linearly by `strength`).
BRIGHTNESS, CONTRAST, SATURATION, CAST = 0.3, 0.3, 0.4, 0.08
GAMMA = 0.35  # gamma in [1 / (1 + GAMMA), 1 + GAMMA]
BLUR_P, SOFTEN_P, NOISE_MAX = 0.3, 0.2, 0.04


def draw_params(seed: int, epoch: int, index: torch.Tensor, strength: float = 1.0) -> dict[str, torch.Tensor]:
    """Per-sample parameters [B] (float32, CPU) from (seed, epoch, sample index)."""
    idx = index.detach().cpu().numpy().astype(np.int64)
    r = [torch.from_numpy(hash_uniform(int(seed), 17, int(epoch), idx, k)).float() for k in range(10)]
    s = float(strength)

    def spread(u, width):  # uniform in [1 - width, 1 + width]
        return 1.0 + s * width * (2.0 * u - 1.0)

    gamma = torch.exp(s * np.log1p(GAMMA) * (2.0 * r[3] - 1.0))
    return {
        "brightness": spread(r[0], BRIGHTNESS),
        "contrast": spread(r[1], CONTRAST),
        "saturation": spread(r[2], SATURATION),
        "gamma": gamma,
        "cast": torch.stack([spread(r[4], CAST), spread(r[5], CAST), spread(r[6], CAST)], dim=1),
        "blur": torch.where(r[7] < BLUR_P * s, r[7] / max(BLUR_P * s, 1e-9), torch.zeros_like(r[7])),
        "soften": (r[8] < SOFTEN_P * s).float(),
        "noise": s * NOISE_MAX * r[9] * r[9],
        "noise_seed": torch.from_numpy(hash_uniform(int(seed), 18, int(epoch), idx) * 2**31).long(),
    }


def _blur3(x: torch.Tensor) -> torch.Tensor:
    """A separable [1, 2, 1] / 4 blur with edge replication (shifted sums: no convolution call,
    several times faster than a grouped conv2d on the CPU)."""
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    x = 0.25 * (x[..., :, :-2] + x[..., :, 2:]) + 0.5 * x[..., :, 1:-1]
    return 0.25 * (x[..., :-2, :] + x[..., 2:, :]) + 0.5 * x[..., 1:-1, :]


def _on_some(x: torch.Tensor, weight: torch.Tensor, weight_dev: torch.Tensor, fn) -> torch.Tensor:
    """x with lerp(x, fn(x), weight) on the samples whose weight is > 0, computed on those only
    (`weight` on the CPU picks them without a device sync; `weight_dev` is the same on x's device)."""
    picked = (weight > 0).nonzero().flatten()
    if picked.numel() == 0:
        return x
    if picked.numel() == x.shape[0]:
        return torch.lerp(x, fn(x), weight_dev.view(-1, 1, 1, 1))
    picked = picked.to(x.device)
    sub = x.index_select(0, picked)
    return x.index_copy(0, picked, torch.lerp(sub, fn(sub), weight_dev.index_select(0, picked).view(-1, 1, 1, 1)))


FLOAT_KEYS = ("brightness", "contrast", "saturation", "gamma", "blur", "soften", "noise", "cast")


def params_on(p: dict[str, torch.Tensor], device, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The float parameters on `device`, moved in one transfer."""
    n = p["brightness"].shape[0]
    moved = torch.cat([p[k].reshape(n, -1).float() for k in FLOAT_KEYS], dim=1).to(device, dtype)
    out, col = {}, 0
    for key in FLOAT_KEYS:
        width = 3 if key == "cast" else 1
        out[key] = moved[:, col : col + width].reshape(p[key].shape)
        col += width
    return out


def colour_matrix(p: dict[str, torch.Tensor], mean_grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Brightness, contrast (about the image's mean grey), saturation (about each pixel's grey)
    and colour cast, in this order, are together one affine map of each pixel's RGB: y = M x + t.
    Per sample M [B, 3, 3] and t [B, 3], given each image's mean grey [B] before brightness.

    brightness b: x1 = b x; contrast c: x2 = c x1 + (1 - c) mean(grey(x1)) = c b x + (1 - c) b m;
    saturation s: x3 = S x2 with S = s I + (1 - s) 1 w^T (w: grey weights, summing to 1, so S 1 = 1);
    cast k: x4 = diag(k) x3. Hence M = c b diag(k) S and t = (1 - c) b m k."""
    b, c, s, k = (p[key].to(mean_grey) for key in ("brightness", "contrast", "saturation", "cast"))
    w = mean_grey.new_tensor(GREY)
    eye = torch.eye(3, dtype=mean_grey.dtype, device=mean_grey.device)
    sat = s.view(-1, 1, 1) * eye + (1.0 - s).view(-1, 1, 1) * w.view(1, 1, 3).expand(1, 3, 3)
    m = k.view(-1, 3, 1) * sat * (c * b).view(-1, 1, 1)
    t = ((1.0 - c) * b * mean_grey).view(-1, 1) * k
    return m, t


def _affine_rgb(x: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """y = M x + t per pixel: one batched matmul (on a contiguous copy of a channels_last x: a
    matmul with 3 as its inner size is slower than the copy)."""
    n, _, h, w = x.shape
    y = torch.baddbmm(t.view(n, 3, 1), m, x.contiguous().view(n, 3, h * w))
    return y.view(n, 3, h, w)


def apply(x: torch.Tensor, p: dict[str, torch.Tensor], salt: int = 0, on_device: dict | None = None) -> torch.Tensor:
    """Augment images x [B, 3, H, W] in [0, 1] with per-sample parameters `p` (see draw_params);
    `salt` makes the sensor noise of two images of one sample independent; `on_device`: `p`
    already moved to x's device (`params_on`), else moved here.

    In order: softening (half resolution and back: detail lost as in a small or compressed
    photo), blur, brightness, contrast, saturation, colour cast (one affine map of RGB per
    sample, `colour_matrix`), clamp, gamma, sensor noise, clamp. Softening and blur are computed
    only for the samples that get them. Everything runs on x's device; the noise is drawn
    there too, from a generator seeded by the batch's samples (the same bits on every run on
    one kind of device; a CPU and a GPU draw different ones)."""
    dev, dtype = x.device, x.dtype
    d = on_device if on_device is not None else params_on(p, dev, dtype)
    h, w = x.shape[-2:]
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()

    def soften(v):
        return F.interpolate(F.avg_pool2d(v, 2, ceil_mode=True), size=(h, w), mode="bilinear", align_corners=False)

    x = _on_some(x, p["soften"], d["soften"], soften)
    x = _on_some(x, p["blur"], d["blur"], _blur3)
    m, t = colour_matrix(d, x.mean(dim=(2, 3)) @ x.new_tensor(GREY))
    x = _affine_rgb(x, m, t)
    x = x.clamp(0.0, 1.0).pow(d["gamma"].view(-1, 1, 1, 1))
    if bool((p["noise"] > 0).any()):
        gen = torch.Generator(device=dev).manual_seed((int(p["noise_seed"].sum()) + salt) % (2**63))
        noise = torch.randn(x.shape, generator=gen, device=dev, dtype=torch.float32).to(dtype)
        x = x + noise * d["noise"].view(-1, 1, 1, 1)
    x = x.clamp(0.0, 1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def augment_batch(batch: dict, seed: int, epoch: int, strength: float = 1.0) -> dict:
    """The batch with its `image` (and `bg`) augmented alike; labels and other keys unchanged."""
    if strength <= 0 or "index" not in batch:
        return batch
    p = draw_params(seed, epoch, batch["index"], strength)
    out = dict(batch)
    on_device = None
    for salt, key in enumerate(IMAGE_KEYS):
        if key in out:
            if on_device is None:
                on_device = params_on(p, out[key].device, out[key].dtype)
            out[key] = apply(out[key], p, salt, on_device)
    return out
