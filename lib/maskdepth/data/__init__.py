"""Synthetic data with exact labels: the world, manifests, composition, the torch Dataset.

camera / shapes / textures  pinhole camera (one per placement), exact ray-solid intersection, textures
backgrounds / foregrounds   scene families with clutter (`render_view`), 3-D objects (`render_object`)
sources                     the spec, scene/object tables, views cached on disk by the spec hash
manifest                    per-stage sample lists (placements, splits incl. ood) verified by sha256
composition                 object traced into its view, contact shadow, exact labels, on the fly
objects                     a stage's traced objects packed on disk (render once, compose many)
dataset / transforms        torch Dataset (`build_dataset`, `model_input`), per-sample flips
photometric / zoom          batched augmentation on the training device (labels untouched / kept metric)
preview                     figures of samples and of every scene and object family"""

from maskdepth.data.dataset import SyntheticDataset, build_dataset, model_input

__all__ = ["SyntheticDataset", "build_dataset", "model_input"]
