"""Placement: foregrounds are prominent (as in the seed's dataset) yet stay in the frame."""

import numpy as np
import pytest

from maskdepth.data import build_dataset
from maskdepth.data import manifest as mf
from maskdepth.data.composition import Composer
from maskdepth.data.sources import SourceSpec, load_sources


def _mask_fractions(n_per_split: dict[str, int]):
    """Mask fractions and top rows of a deterministic spread of 1k-stage samples (unflipped rows)."""
    fractions, tops = [], []
    for split, n in n_per_split.items():
        ds = build_dataset("1k", split, size=64)
        for i in np.linspace(0, len(ds) - 2, n).astype(int) // 2 * 2:
            fractions.append(ds.compose(int(i))["mask"].mean())
            tops.append(ds.composer.y0[i])
    return np.array(fractions), np.array(tops)


def test_foreground_masks_are_prominent_on_the_1k_stage():
    fractions, tops = _mask_fractions({"train": 200, "seen": 50, "unseen": 50})
    assert len(fractions) == 300
    assert 0.12 <= fractions.mean() <= 0.20
    assert np.median(fractions) >= 0.08
    assert (fractions < 0.02).mean() < 0.01
    assert fractions.max() <= 0.6  # never fills the whole frame
    assert (fractions > 0.2).mean() >= 0.1  # and some are large
    # Objects cut by the top edge happen but are not the norm.
    assert (tops < 0).mean() <= 0.1


@pytest.mark.parametrize("frac", [0.3, 0.6, 0.85])
def test_depth_for_pixel_height_inverts_the_projection(frac):
    """The closed-form depth gives the requested pixel height when composed (rounding aside)."""
    sources = load_sources(SourceSpec(), 64)
    person = next(f for f in sources.foregrounds if f.kind == "person")
    for bg in sources.backgrounds[:6]:
        cam = bg.camera
        depth = mf.depth_for_pixel_height(frac, person.height_m, cam.height, cam.sin_pitch, cam.cos_pitch, cam.focal)
        v = cam.v_of_ground_depth(depth)
        comp = Composer(sources, [bg.id], [person.id], [0.5], [v], [1.0], [0])
        assert abs(int(comp.pixel_height[0]) - frac * 64) <= 1
        np.testing.assert_allclose(cam.ground_depth(v), depth, rtol=1e-12)


def test_depth_for_top_row_keeps_tall_objects_in_the_frame():
    sources = load_sources(SourceSpec(), 64)
    person = next(f for f in sources.foregrounds if f.kind == "person")
    for bg in sources.backgrounds[:6]:
        cam = bg.camera
        depth = mf.depth_for_top_row(0.1, person.height_m, cam.height, cam.sin_pitch, cam.cos_pitch, cam.focal)
        assert depth > 0  # a person is taller than every camera: its top can leave the frame
        _, v_top, _ = cam.project(0.0, person.height_m, cam.ground_z_of_depth(depth))
        assert v_top == pytest.approx(0.1, abs=1e-9)
        _, nearer_top, _ = cam.project(0.0, person.height_m, cam.ground_z_of_depth(0.9 * depth))
        assert nearer_top < 0.1
    # An object lower than the camera never reaches the top of a level view: no bound.
    assert mf.depth_for_top_row(0.02, 0.3, 1.0, 0.0, 1.0, 0.8) == 0.0


def test_manifest_tops_respect_the_top_margin():
    """From the manifest alone: every top is at or below row -TOP_CUT, and few are above TOP_MIN."""
    m = mf.load_manifest("1k")
    sources = load_sources(SourceSpec(), 64)
    v, scale = m.values("v"), m.values("scale")
    tops = []
    for row in range(0, len(m), 2):
        bg = sources.backgrounds[int(m.columns["bg"][row])]
        size_m = sources.foregrounds[int(m.columns["fg"][row])].height_m * scale[row]
        depth = bg.camera.ground_depth(v[row])
        _, v_top, _ = bg.camera.project(0.0, size_m, bg.camera.ground_z_of_depth(depth))
        tops.append(v_top)
    tops = np.array(tops)
    assert tops.min() >= -mf.TOP_CUT - 1e-6
    assert (tops < mf.TOP_MIN - 1e-6).mean() <= mf.TOP_CUT_SHARE
