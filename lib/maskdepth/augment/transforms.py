"""Joint augmentations that keep image, bg, mask and depth aligned.

The sample is wrapped in torchvision `tv_tensors` (image and bg as `Image`, mask and depth
as `Mask`) and passed through one `transforms.v2` pipeline call, so every random parameter
(flip or not, jitter amounts) is drawn once and applied to all of them: geometric transforms
move all four together, colour transforms touch only the images (the same jitter parameters
for image and bg, as the same camera took both; contrast mixes each image with its own mean
grey, so the two differ by a small offset) and labels are never interpolated.

No crops, zooms or rotations: a zoom changes the apparent focal length, so the same metric
depth would come with a different object size, which would make depth ambiguous.
"""

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
