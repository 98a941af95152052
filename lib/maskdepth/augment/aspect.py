"""Non-square training views: a share of batches cropped to a landscape or portrait window.

`predict` runs the network at a photo's own aspect ratio, so training should not show it only
squares. A crop changes neither the focal length in pixels nor any depth, so labels stay exact and
metric. One batch shares one crop size (a tensor is rectangular), each sample its own window; the
long side stays the working size. Every draw is a pure function of (seed, epoch, sample indices),
as in `photometric` and `zoom`, so a resumed run crops exactly as an uninterrupted one.
Details: docs/data.md, "Augmentation"."""

from __future__ import annotations

import torch

from maskdepth.augment import IMAGE_KEYS, LABEL_KEYS
from maskdepth.world.textures import hash_uniform


def crop_shape(size: int, max_aspect: float, multiple: int, u_size: float, u_side: float) -> tuple[int, int]:
    """(height, width) of a crop of a `size` square: the short side one of the multiples of
    `multiple` in [size / max_aspect, size), drawn by `u_size`; portrait when `u_side` < 0.5."""
    shorts = [s for s in range(multiple, size, multiple) if size / s <= max_aspect + 1e-9]
    if not shorts:
        return size, size
    short = shorts[min(int(u_size * len(shorts)), len(shorts) - 1)]
    return (size, short) if u_side < 0.5 else (short, size)


def aspect_batch(batch: dict, seed: int, epoch: int, max_aspect: float, multiple: int,
                 share: float = 0.5) -> dict:
    """The batch, cropped with probability `share` to a non-square window (see module doc)."""
    if max_aspect <= 1.0 or share <= 0 or "index" not in batch:
        return batch
    index = batch["index"].detach().cpu().numpy().astype("int64")
    key = int(index.min()) * 1_000_003 + int(index.max())  # the batch's own key: same batch, same crop
    u_crop, u_size, u_side = (float(hash_uniform(int(seed), 23, int(epoch), key, k)) for k in range(3))
    if u_crop >= share:
        return batch
    ref = batch["image"]
    height, width = ref.shape[-2:]
    if height != width:
        return batch
    h, w = crop_shape(int(height), max_aspect, multiple, u_size, u_side)
    if (h, w) == (height, width):
        return batch
    top = (torch.from_numpy(hash_uniform(int(seed), 24, int(epoch), index, 0)) * (height - h + 1)).long().tolist()
    left = (torch.from_numpy(hash_uniform(int(seed), 24, int(epoch), index, 1)) * (width - w + 1)).long().tolist()
    channels_last = ref.dim() == 4 and not ref.is_contiguous() and ref.is_contiguous(memory_format=torch.channels_last)
    out = dict(batch)
    for key_name in IMAGE_KEYS + LABEL_KEYS:
        if key_name in out:
            x = out[key_name]
            y = torch.stack([x[i, :, t:t + h, c:c + w] for i, (t, c) in enumerate(zip(top, left))])
            out[key_name] = y.contiguous(memory_format=torch.channels_last) if channels_last else y.contiguous()
    return out
