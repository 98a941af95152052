"""Augmentation: per-sample flips, crop-and-enlarge with depth kept in metres, and batched photometric
changes on the training device.

Modules: photometric, transforms, zoom.
"""
