"""The last steps every Dataset's `__getitem__` shares, so that the synthetic, packed and folder
datasets give samples of one contract (docs/architecture.md, Samples): index checks,
uint8/uint16 storage to float tensors, the per-sample augmentation and the `index` entry.
"""

from __future__ import annotations

import numpy as np
import torch


def resolve_augment(augment):
    """False/None -> None, True -> the training augmentation, a callable -> itself (as build_dataset)."""
    if augment is True:
        from maskdepth.augment.transforms import build_augment

        return build_augment()
    return augment or None


def check_index(i: int, n: int, where: str) -> int:
    """Sample `i` of `n` (negative counts from the end); an IndexError naming `where` otherwise."""
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"sample {i} out of range for {where} ({n} samples)")
    return i % n


def finish_sample(sample: dict, transform, index: int) -> dict:
    """Apply the joint augmentation (if any) and add `index`: the last step of every __getitem__."""
    if transform is not None:
        from maskdepth.augment.transforms import apply_joint

        sample = apply_joint(transform, sample)
    sample["index"] = index
    return sample


def as_tensors(image: np.ndarray, bg: np.ndarray, mask: np.ndarray, depth_png16: np.ndarray) -> dict:
    """uint8 image/bg [3,S,S], uint8 {0,1} mask [S,S], uint16 depth (m*256) [S,S] -> contract tensors."""
    from maskdepth.core.depth import DEPTH_PNG_SCALE

    def floats(array):
        return np.ascontiguousarray(array, dtype=np.float32)

    return {
        "image": torch.from_numpy(floats(image) / 255.0),
        "bg": torch.from_numpy(floats(bg) / 255.0),
        "mask": torch.from_numpy(floats(mask)[None]),
        "depth": torch.from_numpy(floats(depth_png16)[None] / DEPTH_PNG_SCALE),
    }
