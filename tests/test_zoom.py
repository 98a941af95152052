"""Zoom augmentation: a crop enlarged, labels resampled by nearest pixel and kept in metres."""

import torch

from maskdepth.augment.zoom import draw_zoom, zoom_batch
from maskdepth.datasets.dataset import build_dataset


def _batch():
    ds = build_dataset("playground", "train", size=32)
    return torch.utils.data.default_collate([ds[i] for i in range(0, 24, 3)])


def test_zoomed_labels_are_values_of_the_scene_and_objects_grow():
    batch = _batch()
    out = zoom_batch(batch, seed=0, epoch=0, max_zoom=1.8, share=1.0)
    zoom = draw_zoom(0, 0, batch["index"], 1.8, 1.0)[:, 0]
    assert (zoom > 1.0).all()
    for i in range(len(zoom)):
        # nearest-pixel resampling: every depth value is one of the sample's own (metres unchanged)
        assert set(out["depth"][i].unique().tolist()) <= set(batch["depth"][i].unique().tolist())
        assert set(out["mask"][i].unique().tolist()) <= {0.0, 1.0}
    assert out["image"].shape == batch["image"].shape and torch.equal(out["index"], batch["index"])
    # objects grow, though a crop may cut part of one away: counted over enough samples to be stable
    ds = build_dataset("1k", "train", size=32)
    batch = torch.utils.data.default_collate([ds[i] for i in range(96)])
    out = zoom_batch(batch, seed=0, epoch=0, max_zoom=1.8, share=1.0)
    area, zoomed = batch["mask"].flatten(1).sum(1), out["mask"].flatten(1).sum(1)
    grew = (zoomed >= area)[area > 20]
    assert grew.float().mean() >= 0.6, grew.float().mean()


def test_zoom_is_reproducible_and_off_by_default():
    batch = _batch()
    a = zoom_batch(batch, seed=0, epoch=4, max_zoom=1.5, share=0.5)
    b = zoom_batch(batch, seed=0, epoch=4, max_zoom=1.5, share=0.5)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])
    untouched = draw_zoom(0, 4, batch["index"], 1.5, 0.5)[:, 0] == 1.0
    assert torch.equal(a["depth"][untouched], batch["depth"][untouched])
    assert zoom_batch(batch, seed=0, epoch=4, max_zoom=1.0) is batch
