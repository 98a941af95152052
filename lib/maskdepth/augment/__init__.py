"""Augmentation: per-sample flips, crop-and-enlarge with depth kept in metres, non-square crops and
batched photometric changes on the training device.

Modules: aspect, photometric, transforms, zoom.
"""
