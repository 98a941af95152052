"""The Dataset contract other modules code against, model_input, joint augmentation, errors."""

import numpy as np
import pytest
import torch

from maskdepth.augment.transforms import apply_joint, build_augment
from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.dataset import build_dataset, model_input
from maskdepth.world import foregrounds


@pytest.mark.parametrize("split,count", [("train", 24), ("seen", 8), ("unseen", 8), ("ood", 8)])
def test_samples_follow_the_contract(split, count):
    ds = build_dataset("playground", split)
    assert len(ds) == count
    s = ds[count - 1]
    assert s["index"] == count - 1
    for key, channels in (("image", 3), ("bg", 3), ("mask", 1), ("depth", 1)):
        assert s[key].dtype == torch.float32 and s[key].shape == (channels, 64, 64), key
    assert 0 <= s["image"].min() and s["image"].max() <= 1
    assert set(s["mask"].unique().tolist()) <= {0.0, 1.0}
    assert (s["depth"] > 0).all()
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["index"].tolist() == [0, 1, 2, 3]


def test_sources_of_a_sample():
    ds = build_dataset("playground", "train")
    src = ds.sources(5)
    assert src["bg"].shape == (64, 64, 3) and src["bg"].dtype == np.uint8
    assert src["bg_depth"].shape == (64, 64) and src["bg_depth"].min() > 0
    info = src["info"]
    assert info["bg"] == ds.manifest.columns["bg"][5] and info["placement"] == ds.manifest.columns["placement"][5]
    np.testing.assert_array_equal(src["bg"], np.rint(ds.compose(4)["bg"].transpose(1, 2, 0) * 255))  # row 4: unflipped
    assert info["fg_family"] in foregrounds.TRAIN_FAMILIES


def test_model_input():
    batch = {"image": torch.rand(2, 3, 8, 8), "bg": torch.rand(2, 3, 8, 8)}
    assert model_input(batch, 3) is batch["image"]
    x = model_input(batch, 6)
    assert x.shape == (2, 6, 8, 8)
    assert torch.equal(x[:, :3], batch["bg"]) and torch.equal(x[:, 3:], batch["image"])
    single = {"image": torch.rand(3, 8, 8), "bg": torch.rand(3, 8, 8)}
    assert model_input(single, 6).shape == (6, 8, 8)
    with pytest.raises(MaskdepthError, match="in_channels=4"):
        model_input(batch, 4)
    with pytest.raises(MaskdepthError, match="no 'bg'"):
        model_input({"image": batch["image"]}, 6)


def test_augmentation_keeps_image_mask_depth_aligned():
    ds = build_dataset("playground", "train")
    # a sample whose mask and depth are not left-right symmetric, so a flip is visible in both
    for i in range(len(ds)):
        plain = {k: torch.from_numpy(v) for k, v in ds.compose(i).items()}
        if plain["mask"].sum() > 0 and not any(torch.equal(plain[k], plain[k].flip(-1)) for k in ("mask", "depth")):
            break
    flipped = apply_joint(build_augment(flip_p=1.0, colour=0, hue=0), dict(plain))
    for key in ("image", "bg", "mask", "depth"):
        assert torch.equal(flipped[key], plain[key].flip(-1)), key
    torch.manual_seed(0)
    aug = build_augment()
    states = set()
    for _ in range(12):
        out = apply_joint(aug, dict(plain))
        is_flipped = torch.equal(out["mask"], plain["mask"].flip(-1))
        assert is_flipped != torch.equal(out["mask"], plain["mask"])
        ref = {k: (v.flip(-1) if is_flipped else v) for k, v in plain.items()}
        assert torch.equal(out["depth"], ref["depth"])  # labels never jittered
        # image and bg got the same colour change (up to contrast's own-mean offset):
        # pixels with no foreground stay nearly equal
        untouched = ref["image"] == ref["bg"]
        assert (out["image"][untouched] - out["bg"][untouched]).abs().mean() < 0.01
        # the foreground pixels still differ from the background where they did before
        assert (out["image"] - out["bg"]).abs().sum(0)[ref["mask"][0] > 0].mean() > 0.01
        states.add(is_flipped)
    assert states == {True, False}
    ds_aug = build_dataset("playground", "train", augment=True)
    assert ds_aug[0]["image"].shape == (3, 64, 64)


def test_clear_errors(tmp_path):
    with pytest.raises(MaskdepthError, match="'nope': not a stage"):
        build_dataset("nope", "train")
    with pytest.raises(MaskdepthError, match="not a complete maskdepth dataset"):
        build_dataset(str(tmp_path), "train")
    with pytest.raises(MaskdepthError, match="split='val'"):
        build_dataset("playground", "val")
    with pytest.raises(MaskdepthError, match="size=7"):
        build_dataset("playground", "train", size=7)
    with pytest.raises(IndexError, match="out of range"):
        build_dataset("playground", "seen")[8]
