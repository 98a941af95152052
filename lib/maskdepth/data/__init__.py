"""Synthetic data with exact labels: sources, manifests, composition, the torch Dataset.

backgrounds / foregrounds  procedural sources (exact depth, RGBA sprites with real height)
sources                    deterministic generation + on-disk cache keyed by the spec hash
manifest                   per-stage sample lists (placements, splits) verified by sha256
composition                fg-on-bg with exact labels, numpy only, on the fly
dataset / transforms       torch Dataset (`build_dataset`, `model_input`), joint augmentation
preview                    figures of samples (bg, fg, fg_bg, mask, depth)
"""

from maskdepth.data.dataset import SyntheticDataset, build_dataset, model_input

__all__ = ["SyntheticDataset", "build_dataset", "model_input"]
