"""Batched photometric augmentation: reproducible per sample, labels untouched, image and bg alike."""

import torch

from maskdepth.data import build_dataset
from maskdepth.data.photometric import augment_batch, draw_params


def _batch():
    ds = build_dataset("playground", "train", size=32)
    return torch.utils.data.default_collate([ds[i] for i in range(8)])


def test_labels_are_untouched_and_images_stay_in_range():
    batch = _batch()
    out = augment_batch(batch, seed=0, epoch=3)
    for key in ("mask", "depth", "index"):
        assert torch.equal(out[key], batch[key])
    for key in ("image", "bg"):
        assert out[key].shape == batch[key].shape and 0 <= out[key].min() and out[key].max() <= 1
        changed = (out[key] - batch[key]).abs().flatten(1).mean(1)
        assert (changed > 1e-3).sum() >= 6  # nearly every sample is changed


def test_parameters_depend_on_seed_epoch_and_sample_only():
    batch = _batch()
    a = augment_batch(batch, seed=0, epoch=2)["image"]
    b = augment_batch(batch, seed=0, epoch=2)["image"]
    assert torch.equal(a, b)
    assert not torch.equal(a, augment_batch(batch, seed=0, epoch=3)["image"])
    assert not torch.equal(a, augment_batch(batch, seed=1, epoch=2)["image"])
    # a sample's parameters do not depend on which batch it is in
    p_all = draw_params(0, 2, batch["index"])
    p_one = draw_params(0, 2, batch["index"][3:4])
    for key in ("brightness", "contrast", "gamma", "blur", "noise"):
        assert torch.equal(p_all[key][3:4], p_one[key])


def test_image_and_bg_share_colour_parameters_and_strength_zero_is_identity():
    batch = _batch()
    batch["image"] = batch["bg"].clone()  # the same picture twice
    p = draw_params(0, 1, batch["index"])
    out = augment_batch(batch, seed=0, epoch=1)
    quiet = p["noise"] == 0
    if quiet.any():
        assert torch.allclose(out["image"][quiet], out["bg"][quiet])
    diff = (out["image"] - out["bg"]).abs().flatten(1).mean(1)
    assert diff.max() < 0.05  # only independent sensor noise differs
    assert augment_batch(batch, seed=0, epoch=1, strength=0)["image"] is batch["image"]
