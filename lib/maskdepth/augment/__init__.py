"""Augmentation: per-sample flips, crop-and-enlarge with depth kept in metres, non-square crops and
batched photometric changes on the training device.

Modules: aspect, photometric, transforms, zoom.
"""

# The tensors of a sample that augmentation moves, named once: the images (resampled bilinear,
# changed by photometric augmentation) and the labels (resampled nearest, never recoloured).
IMAGE_KEYS = ("image", "bg")
LABEL_KEYS = ("mask", "depth")
