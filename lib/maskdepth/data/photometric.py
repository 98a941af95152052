"""Photometric augmentation of whole batches on the training device, labels untouched.

A network that scores well on one renderer's colours, contrast and sharpness but fails on
another camera's has learnt the renderer. Each training sample gets its own random
brightness, contrast, saturation, colour cast, gamma, blur or softening (a lower
resolution upsampled again, as a small or compressed photo looks) and sensor noise. The
same parameters apply to the sample's `image` and `bg` (one camera took both); `mask` and
`depth` are never touched.

Parameters are a pure function of (seed, epoch, sample index) (counter-based hashing), so
runs are reproducible and a resumed run augments exactly as an uninterrupted one; they are
drawn on the CPU (a few numbers per sample) and applied to the batch tensors on their
device (GPU when present), after collation: cheap next to the per-sample
`transforms.v2` path, which stays available through `build_augment(colour=...)`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from maskdepth.data.textures import hash_uniform

IMAGE_KEYS = ("image", "bg")
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


def _grey(x: torch.Tensor) -> torch.Tensor:
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _blur3(x: torch.Tensor) -> torch.Tensor:
    """A separable [1, 2, 1] / 4 blur with edge replication."""
    k = x.new_tensor([0.25, 0.5, 0.25])
    c = x.shape[1]
    x = F.pad(x, (1, 1, 1, 1), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 3).expand(c, 1, 1, 3), groups=c)
    return F.conv2d(x, k.view(1, 1, 3, 1).expand(c, 1, 3, 1), groups=c)


def apply(x: torch.Tensor, p: dict[str, torch.Tensor], salt: int = 0) -> torch.Tensor:
    """Augment images x [B, 3, H, W] in [0, 1] with per-sample parameters `p` (see draw_params);
    `salt` makes the sensor noise of two images of one sample independent."""
    dev, dtype = x.device, x.dtype
    view = lambda t: t.to(dev, dtype).view(-1, 1, 1, 1)  # noqa: E731
    b = x.shape[0]
    # softening: half resolution and back (detail lost as in a small or compressed photo)
    if bool((p["soften"] > 0).any()):
        h, w = x.shape[-2:]
        low = F.interpolate(F.avg_pool2d(x, 2, ceil_mode=True), size=(h, w), mode="bilinear", align_corners=False)
        x = torch.lerp(x, low, view(p["soften"]))
    if bool((p["blur"] > 0).any()):
        x = torch.lerp(x, _blur3(x), view(p["blur"]))
    x = x * view(p["brightness"])
    mean = _grey(x).mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * view(p["contrast"])
    g = _grey(x)
    x = g + (x - g) * view(p["saturation"])
    x = x * p["cast"].to(dev, dtype).view(b, 3, 1, 1)
    x = x.clamp(0.0, 1.0).pow(view(p["gamma"]))
    if bool((p["noise"] > 0).any()):
        gen = torch.Generator(device="cpu").manual_seed((int(p["noise_seed"].sum()) + salt) % (2**63))
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(dev, dtype)
        x = x + noise * view(p["noise"])
    return x.clamp(0.0, 1.0)


def augment_batch(batch: dict, seed: int, epoch: int, strength: float = 1.0) -> dict:
    """The batch with its `image` (and `bg`) augmented alike; labels and other keys unchanged."""
    if strength <= 0 or "index" not in batch:
        return batch
    p = draw_params(seed, epoch, batch["index"], strength)
    out = dict(batch)
    for salt, key in enumerate(IMAGE_KEYS):
        if key in out:
            out[key] = apply(out[key], p, salt)
    return out
