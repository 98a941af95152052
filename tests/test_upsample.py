"""Edge-aware (guided) upsampling: sharper edges where the guide has them, nothing invented elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import maskdepth.prediction.upsample as upsample
from maskdepth.prediction.upsample import bilinear, bilinear_matrix, guided_upsample

HIGH, LOW = 128, 32  # 4x, as a 64 px network's outputs brought to a 256 px image
EDGE = 77  # the object's edge column at full size: not on the low-resolution grid (77 / 4 = 19.25)


def _step_scene(rgb=True, seed=0):
    """A full-resolution guide (object left of EDGE, ground right, mild noise), its true mask,
    and the blurry low-resolution logits a network would give for it."""
    rng = np.random.default_rng(seed)
    truth = torch.zeros(1, 1, HIGH, HIGH)
    truth[..., :EDGE] = 1.0
    colour = torch.tensor([0.8, 0.3, 0.2]) if rgb else torch.tensor([0.7])
    ground = torch.tensor([0.2, 0.5, 0.6]) if rgb else torch.tensor([0.25])
    guide = truth * colour[:, None, None] + (1 - truth) * ground[:, None, None]
    guide = (guide + torch.from_numpy(rng.normal(0, 0.01, guide.shape)).float()).clamp(0, 1)
    soft = F.interpolate(truth, size=(LOW, LOW), mode="bilinear", antialias=True, align_corners=False)
    soft = F.avg_pool2d(soft, 3, 1, 1, count_include_pad=False)  # a network's edge is blurrier still
    logits = 8.0 * (soft - 0.5)
    return guide, truth, logits


def _boundary_error(logits: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean |sigmoid - truth| within 6 px of the edge (how far from a sharp, aligned edge)."""
    near = slice(EDGE - 6, EDGE + 6)
    return float((torch.sigmoid(logits) - truth)[..., near].abs().mean())


@pytest.mark.parametrize("rgb", [True, False], ids=["rgb", "grey"])
def test_guided_gives_a_sharper_edge_aligned_with_the_guide(rgb):
    guide, truth, logits = _step_scene(rgb)
    plain = bilinear(logits, (HIGH, HIGH))
    guided = guided_upsample(logits, guide)
    assert _boundary_error(guided, truth) < 0.5 * _boundary_error(plain, truth)
    # thresholded, the guided edge sits on the guide's edge column
    row = (guided[0, 0, HIGH // 2] > 0).numpy()
    assert row[: EDGE - 1].all() and not row[EDGE + 1 :].any()
    # and its transition (10 % to 90 % probability) is narrower than bilinear's
    def width(x):
        p = torch.sigmoid(x[0, 0, HIGH // 2])
        return int(((p > 0.1) & (p < 0.9)).sum())
    assert width(guided) < width(plain)


def test_constant_input_stays_constant():
    guide = torch.rand(2, 3, 50, 70)
    src = torch.full((2, 2, 13, 17), 3.25)
    for g in (guide, guide[:, :1]):
        out = guided_upsample(src, g)
        assert torch.allclose(out, torch.full_like(out, 3.25), atol=1e-5)


def test_a_flat_guide_adds_no_detail():
    """Without colour edges the guide says nothing: the result is the source smoothed, never noisier."""
    src = torch.randn(1, 1, 16, 16)
    out = guided_upsample(src, torch.full((1, 3, 64, 64), 0.4))
    assert out.std() <= bilinear(src, (64, 64)).std()
    assert abs(float(out.mean() - src.mean())) < 0.2


def test_shape_dtype_and_downsizing():
    src = torch.randn(3, 2, 16, 24)
    out = guided_upsample(src, torch.rand(3, 3, 37, 101))
    assert out.shape == (3, 2, 37, 101) and out.dtype == torch.float32
    # a target no larger than the source is plain bilinear
    small = guided_upsample(src, torch.rand(3, 3, 8, 12))
    assert torch.equal(small, F.interpolate(src, size=(8, 12), mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match="guide"):
        guided_upsample(src, torch.rand(3, 2, 37, 101))  # 2-channel guide
    with pytest.raises(ValueError, match="guide"):
        guided_upsample(src, torch.rand(1, 3, 37, 101))  # batch mismatch


def test_bands_and_the_bilinear_matrix_change_nothing(monkeypatch):
    x = torch.randn(2, 3, 16, 20)
    for size in [(37, 50), (64, 80), (16, 20), (9, 7)]:
        matrix = bilinear_matrix(size[0], 16) @ x @ bilinear_matrix(size[1], 20).T
        torch.testing.assert_close(matrix, F.interpolate(x, size=size, mode="bilinear", align_corners=False),
                                   atol=1e-5, rtol=1e-5)
    guide = torch.rand(2, 3, 64, 80)
    whole = guided_upsample(x, guide)
    monkeypatch.setattr(upsample, "BAND_PIXELS", 1000)  # bands of 12 rows
    torch.testing.assert_close(guided_upsample(x, guide), whole, atol=1e-5, rtol=1e-5)


def test_eps_per_channel_is_the_same_as_separate_filters():
    src, guide = torch.randn(2, 2, 16, 16), torch.rand(2, 3, 64, 64)
    both = guided_upsample(src, guide, eps=(1e-4, 1e-2))
    torch.testing.assert_close(both[:, :1], guided_upsample(src[:, :1], guide, eps=1e-4), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[:, 1:], guided_upsample(src[:, 1:], guide, eps=1e-2), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="eps"):
        guided_upsample(src, guide, eps=(1e-4, 1e-3, 1e-2))
    with pytest.raises(ValueError, match="eps"):
        guided_upsample(src, guide, eps=0.0)


def test_the_command_line_offers_the_library_methods():
    from maskdepth.cli.predict import UPSAMPLE_CHOICES

    assert set(UPSAMPLE_CHOICES) == set(upsample.UPSAMPLE_METHODS)
