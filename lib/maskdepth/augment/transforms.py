"""Joint augmentations that keep image, bg, mask and depth aligned.

One torchvision `transforms.v2` call on the sample wrapped in `tv_tensors` draws every random
parameter once and applies it to all four: geometric transforms move them together, colour
transforms touch only the images (the same jitter for image and bg: one camera took both), and
labels are never interpolated. No crops, zooms or rotations here: a zoom changes the apparent focal
length, so the same metric depth would come with a different object size (`zoom` keeps it exact).
Details: docs/data.md, "Augmentation"."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from maskdepth.augment import IMAGE_KEYS, LABEL_KEYS


def build_augment(flip_p: float = 0.5, colour: float = 0.0, hue: float = 0.0) -> v2.Transform:
    """The per-sample training augmentation: a random horizontal flip (plus, when asked,
    per-sample colour jitter).

    Colour is off by default: the trainer applies photometric augmentation to whole batches
    on the training device (`photometric`), far cheaper than per-sample ColorJitter, whose hue
    jitter is its slow part (docs/recipes.md, "Measurements behind code choices").
    """
    steps: list[v2.Transform] = [v2.RandomHorizontalFlip(p=flip_p)]
    if colour > 0 or hue > 0:
        steps.append(v2.ColorJitter(brightness=colour, contrast=colour, saturation=colour, hue=hue))
    return v2.Compose(steps)


def apply_joint(transform, sample: dict) -> dict:
    """Apply `transform` to a sample dict of tensors; returns plain tensors, other keys untouched."""
    wrapped = dict(sample)
    for key in IMAGE_KEYS:
        if key in wrapped:
            wrapped[key] = tv_tensors.Image(wrapped[key])
    for key in LABEL_KEYS:
        if key in wrapped:
            wrapped[key] = tv_tensors.Mask(wrapped[key])
    out = transform(wrapped)
    for key in IMAGE_KEYS:
        if key in out:
            out[key] = out[key].as_subclass(torch.Tensor).clamp_(0.0, 1.0)
    for key in LABEL_KEYS:
        if key in out:
            out[key] = out[key].as_subclass(torch.Tensor)
    return out
