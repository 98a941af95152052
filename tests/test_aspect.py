"""Non-square training crops: exact labels, reproducible, a real share of batches cropped."""

import torch

from maskdepth.augment.aspect import aspect_batch, crop_shape


def _batch(n=8, size=96, first=0):
    g = torch.Generator().manual_seed(first)
    return {
        "image": torch.rand(n, 3, size, size, generator=g),
        "bg": torch.rand(n, 3, size, size, generator=g),
        "mask": (torch.rand(n, 1, size, size, generator=g) > 0.5).float(),
        "depth": torch.rand(n, 1, size, size, generator=g) * 10 + 0.5,
        "index": torch.arange(first, first + n),
    }


def test_crop_shape_keeps_the_long_side_and_the_size_multiple():
    assert crop_shape(96, 1.5, 32, 0.0, 0.9) == (64, 96)
    assert crop_shape(96, 1.5, 32, 0.0, 0.1) == (96, 64)
    assert crop_shape(128, 2.0, 32, 0.99, 0.9) == (96, 128)
    assert crop_shape(128, 2.0, 32, 0.0, 0.9) == (64, 128)
    assert crop_shape(64, 1.5, 32, 0.5, 0.9) == (64, 64)  # no multiple of 32 fits: square kept


def test_off_when_aspect_is_one():
    batch = _batch()
    assert aspect_batch(batch, 0, 0, 1.0, 32) is batch


def test_a_crop_is_a_window_of_each_sample_with_every_label_value_kept():
    cropped = []
    for first in range(0, 400, 8):
        batch = _batch(first=first)
        out = aspect_batch(batch, seed=3, epoch=1, max_aspect=1.5, multiple=32)
        if out is batch:
            continue
        h, w = out["image"].shape[-2:]
        assert sorted((h, w)) == [64, 96]
        for key in ("image", "bg", "mask", "depth"):
            assert out[key].shape[-2:] == (h, w)
        for i in range(len(batch["index"])):
            src = batch["depth"][i, 0]
            win = out["depth"][i, 0]
            found = [(t, c) for t in range(96 - h + 1) for c in range(96 - w + 1)
                     if torch.equal(src[t:t + h, c:c + w], win)]
            assert len(found) == 1
            t, c = found[0]
            for key in ("image", "bg", "mask"):
                assert torch.equal(out[key][i], batch[key][i, :, t:t + h, c:c + w])
        cropped.append((h, w))
    # about half of 50 batches are cropped, in both orientations
    assert 12 <= len(cropped) <= 38
    assert {(64, 96), (96, 64)} <= set(cropped)


def test_same_seed_epoch_and_indices_give_the_same_crop_and_epochs_differ():
    shapes = {}
    for epoch in range(6):
        a = aspect_batch(_batch(first=40), 5, epoch, 1.5, 32)
        b = aspect_batch(_batch(first=40), 5, epoch, 1.5, 32)
        for key in ("image", "mask", "depth"):
            assert torch.equal(a[key], b[key])
        shapes[epoch] = tuple(a["image"].shape[-2:])
    assert len(set(shapes.values())) > 1


def test_channels_last_batches_stay_channels_last():
    for first in range(0, 200, 8):
        batch = _batch(first=first)
        batch = {k: (v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v)
                 for k, v in batch.items()}
        out = aspect_batch(batch, 0, 0, 1.5, 32)
        if out is not batch:
            assert out["image"].is_contiguous(memory_format=torch.channels_last)
            return
    raise AssertionError("no batch of 25 was cropped")
