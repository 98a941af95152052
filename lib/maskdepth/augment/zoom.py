"""Zoom augmentation of whole batches: a crop resized back to full size, labels kept metric.

Cropping 1/z of the image and enlarging it z times is the picture a camera with a z times longer
focal length would take from the same place: every visible point keeps its z-depth, so the depth
label is not rescaled — variety of camera intrinsics and object sizes at no rendering cost. Labels
are resampled by the nearest source pixel, so no depth is blended across an edge. Parameters are a
pure function of (seed, epoch, sample index), as in `photometric`.
Details: docs/data.md, "Augmentation"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maskdepth.augment import IMAGE_KEYS, LABEL_KEYS
from maskdepth.world.textures import hash_uniform


def draw_zoom(seed: int, epoch: int, index: torch.Tensor, max_zoom: float, share: float) -> torch.Tensor:
    """[B, 3] float32: zoom factor z (1 = untouched) and the crop centre (cx, cy) in [-1, 1] units."""
    idx = index.detach().cpu().numpy().astype("int64")
    r = [torch.from_numpy(hash_uniform(int(seed), 19, int(epoch), idx, k)).float() for k in range(4)]
    z = torch.where(r[0] < share, 1.0 + (max_zoom - 1.0) * r[1], torch.ones_like(r[1]))
    room = 1.0 - 1.0 / z  # how far the crop centre may move and stay inside the image
    return torch.stack([z, room * (2.0 * r[2] - 1.0), room * (2.0 * r[3] - 1.0)], dim=1)


def zoom_batch(batch: dict, seed: int, epoch: int, max_zoom: float = 1.5, share: float = 0.5) -> dict:
    """The batch with a share of its samples zoomed by up to `max_zoom` (see module doc)."""
    if max_zoom <= 1.0 or share <= 0 or "index" not in batch:
        return batch
    params = draw_zoom(seed, epoch, batch["index"], max_zoom, share)
    if bool((params[:, 0] == 1.0).all()):
        return batch
    ref = batch["image"]
    z, cx, cy = (params[:, k].to(ref.device, torch.float32) for k in range(3))
    theta = torch.zeros(len(z), 2, 3, device=ref.device, dtype=torch.float32)
    theta[:, 0, 0] = 1.0 / z
    theta[:, 1, 1] = 1.0 / z
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(ref.shape), align_corners=False)
    channels_last = ref.dim() == 4 and not ref.is_contiguous() and ref.is_contiguous(memory_format=torch.channels_last)
    out = dict(batch)
    for key in IMAGE_KEYS + LABEL_KEYS:
        if key in out:
            x = out[key]
            mode = "bilinear" if key in IMAGE_KEYS else "nearest"
            y = F.grid_sample(x.float(), grid.to(x.device), mode=mode, padding_mode="border", align_corners=False)
            y = y.to(x.dtype)
            out[key] = y.contiguous(memory_format=torch.channels_last) if channels_last else y
    return out
