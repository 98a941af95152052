"""Batched photometric augmentation: reproducible per sample, labels untouched, image and bg alike."""

import torch

from maskdepth.augment.photometric import augment_batch, draw_params
from maskdepth.datasets.dataset import build_dataset


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


def test_flips_move_image_bg_mask_and_depth_together_and_photometric_keeps_them_aligned(monkeypatch):
    """The per-sample flip moves all four tensors; the batched photometric step after it leaves
    the flipped labels exact and (sensor noise aside) commutes with the flip."""
    from maskdepth.augment import photometric
    from maskdepth.augment.transforms import build_augment

    plain = build_dataset("playground", "train", size=32)
    flipped = build_dataset("playground", "train", size=32, augment=build_augment(flip_p=1.0))
    a = torch.utils.data.default_collate([plain[i] for i in range(6)])
    b = torch.utils.data.default_collate([flipped[i] for i in range(6)])
    for key in ("image", "bg", "mask", "depth"):
        assert torch.equal(b[key], torch.flip(a[key], dims=[-1])), key
    assert not torch.equal(b["image"], a["image"])
    out = augment_batch(b, seed=3, epoch=1)
    assert torch.equal(out["mask"], b["mask"]) and torch.equal(out["depth"], b["depth"])
    monkeypatch.setattr(photometric, "NOISE_MAX", 0.0)  # noise is drawn per pixel, not per position
    for key in ("image", "bg"):
        assert torch.allclose(augment_batch(b, seed=3, epoch=1)[key],
                              torch.flip(augment_batch(a, seed=3, epoch=1)[key], dims=[-1]), atol=1e-5), key


def test_the_trainers_augmentation_chain_is_deterministic_and_leaves_labels_to_the_geometric_steps():
    """Flip (per sample, seeded), zoom, photometric: as the trainer runs them (train_one_epoch)."""
    from maskdepth.augment.transforms import build_augment
    from maskdepth.augment.zoom import zoom_batch

    def chain(seed, epoch, torch_seed=0):
        torch.manual_seed(torch_seed)  # the trainer seeds every RNG from (seed, epoch)
        ds = build_dataset("playground", "train", size=32, augment=build_augment())
        batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
        geometric = zoom_batch(batch, seed, epoch, max_zoom=1.5)
        return geometric, augment_batch(geometric, seed, epoch)

    geo, out = chain(0, 2)
    geo2, out2 = chain(0, 2)
    for key in ("image", "bg", "mask", "depth"):
        assert torch.equal(out[key], out2[key]), key
    for key in ("mask", "depth"):  # the photometric step never touches labels
        assert torch.equal(out[key], geo[key]), key
    assert not torch.equal(out["image"], chain(0, 3)[1]["image"])


def _step_by_step(x, p, salt):
    """The definition, one operation after another (what `apply` computes in fewer passes)."""
    import torch.nn.functional as F

    from maskdepth.augment.photometric import GREY

    def _grey(v):  # luma, as the definition reads
        return (v * v.new_tensor(GREY).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)

    view = lambda t: t.view(-1, 1, 1, 1)  # noqa: E731
    h, w = x.shape[-2:]
    low = F.interpolate(F.avg_pool2d(x, 2, ceil_mode=True), size=(h, w), mode="bilinear", align_corners=False)
    x = torch.lerp(x, low, view(p["soften"]))
    k = torch.tensor([0.25, 0.5, 0.25])
    pad = F.pad(x, (1, 1, 1, 1), mode="replicate")
    blurred = F.conv2d(F.conv2d(pad, k.view(1, 1, 1, 3).expand(3, 1, 1, 3), groups=3),
                       k.view(1, 1, 3, 1).expand(3, 1, 3, 1), groups=3)
    x = torch.lerp(x, blurred, view(p["blur"]))
    x = x * view(p["brightness"])
    mean = _grey(x).mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * view(p["contrast"])
    g = _grey(x)
    x = g + (x - g) * view(p["saturation"])
    x = (x * p["cast"].view(-1, 3, 1, 1)).clamp(0.0, 1.0).pow(view(p["gamma"]))
    gen = torch.Generator().manual_seed((int(p["noise_seed"].sum()) + salt) % (2**63))
    return (x + torch.randn(x.shape, generator=gen) * view(p["noise"])).clamp(0.0, 1.0)


def test_fast_apply_equals_the_step_by_step_definition_in_either_memory_format():
    from maskdepth.augment.photometric import apply

    batch = _batch()
    for epoch in (0, 5):
        p = draw_params(0, epoch, batch["index"])
        for salt, key in enumerate(("image", "bg")):
            want = _step_by_step(batch[key], p, salt)
            assert torch.allclose(apply(batch[key], p, salt), want, atol=2e-6), (epoch, key)
            cl = apply(batch[key].contiguous(memory_format=torch.channels_last), p, salt)
            assert cl.is_contiguous(memory_format=torch.channels_last) and torch.allclose(cl, want, atol=2e-6)
