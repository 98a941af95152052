"""Composition: mask = alpha > 0.5, exact fg depth, flips, perspective, speed-relevant shapes."""

import numpy as np
import pytest

from maskdepth.data import build_dataset
from maskdepth.data import manifest as mf
from maskdepth.data.composition import Composer
from maskdepth.data.sources import SourceSpec, load_sources


@pytest.fixture(scope="module")
def train64():
    return build_dataset("playground", "train", size=64)


def _paste_alpha(composer, i):
    """The sprite's alpha placed on an empty canvas, independently of compose()."""
    S = composer.size
    h, w = int(composer.pixel_height[i]), int(composer.pixel_width[i])
    alpha, _, _ = composer.sprite(int(composer.fg[i]), h, w)
    canvas = np.zeros((S + 2 * h, S + 2 * w), dtype=np.float32)
    y0, x0 = int(composer.y0[i]) + h, int(composer.x0[i]) + w
    canvas[y0 : y0 + h, x0 : x0 + w] = alpha
    return canvas[h : h + S, w : w + S]


def test_labels_are_exact(train64):
    c = train64.composer
    checked = 0
    for i in range(len(train64)):
        s = train64.compose(i)
        info = train64.info(i)
        alpha = _paste_alpha(c, i)
        if info["flip"]:
            alpha = alpha[:, ::-1]
        mask = s["mask"][0]
        assert set(np.unique(mask)) <= {0.0, 1.0}
        np.testing.assert_array_equal(mask, (alpha > 0.5).astype(np.float32))
        # depth inside the mask = analytic ground depth at the foot point, from the camera alone
        cam = train64.source_set.backgrounds[info["bg"]].camera
        expected = np.float32(cam.ground_depth(info["v"]))
        inside = mask > 0
        if inside.any():
            checked += 1
            assert (s["depth"][0][inside] == expected).all()
        # outside: the background's own depth, untouched
        bg_depth = train64.source_set.bg_depth[info["bg"]]
        if info["flip"]:
            bg_depth = bg_depth[:, ::-1]
        np.testing.assert_array_equal(s["depth"][0][~inside], bg_depth[~inside])
        # image = alpha blend: unchanged where alpha == 0, bg exposed as the `bg` entry
        untouched = alpha == 0
        np.testing.assert_array_equal(s["image"][:, untouched], s["bg"][:, untouched])
        assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
    assert checked >= len(train64) - 2


def test_flip_mirrors_image_bg_mask_and_depth(train64):
    for i in range(0, len(train64), 2):
        assert train64.info(i)["flip"] == 0 and train64.info(i + 1)["flip"] == 1
        a, b = train64.compose(i), train64.compose(i + 1)
        for key in ("image", "bg", "mask", "depth"):
            np.testing.assert_array_equal(a[key][..., ::-1], b[key], err_msg=key)


def test_lower_foot_point_is_nearer_and_larger():
    sources = load_sources(SourceSpec(), 64)
    indoor = next(b for b in sources.backgrounds if b.kind == "indoor")
    person = next(f for f in sources.foregrounds if f.kind == "person")
    cam = indoor.camera
    v = cam.v_of_ground_depth(np.array([4.0, 2.5]))  # far, then near
    comp = Composer(sources, [indoor.id] * 2, [person.id] * 2, [0.5, 0.5], v, [1.0, 1.0], [0, 0])
    far, near = comp.compose(0), comp.compose(1)
    assert v[1] > v[0]  # the nearer foot point is lower in the image
    assert near["depth"][0][near["mask"][0] > 0].max() < far["depth"][0][far["mask"][0] > 0].min()
    rows = [np.flatnonzero(s["mask"][0].any(axis=1)) for s in (far, near)]
    far_h, near_h = (r.max() - r.min() + 1 for r in rows)
    assert near_h > 1.4 * far_h
    # pixel height ~ height_m * focal * size / depth (pitch makes it slightly larger)
    for height_px, depth in ((far_h, 4.0), (near_h, 2.5)):
        assert height_px == pytest.approx(person.height_m * cam.focal * 64 / depth, rel=0.15)


def test_composition_works_at_other_sizes():
    ds = build_dataset("playground", "unseen", size=32)
    s = ds.compose(3)
    assert s["image"].shape == (3, 32, 32) and s["depth"].shape == (1, 32, 32)
    info = ds.info(3)
    cam = ds.source_set.backgrounds[info["bg"]].camera
    assert s["mask"].sum() > 0
    assert (s["depth"][0][s["mask"][0] > 0] == np.float32(cam.ground_depth(info["v"]))).all()
    # 224 px on a tiny source set (rendering all 110 backgrounds at 224 takes ~30 s)
    spec = SourceSpec(n_bg=2, n_fg=2, n_bg_unseen=0, n_fg_unseen=0)
    sources = load_sources(spec, 224)
    bg, fg, p = np.array([0, 1]), np.array([1, 0]), np.array([0, 0])
    u, v, scale = (q / mf.QUANT for q in mf.place(spec, bg, fg, p))
    comp = Composer(sources, bg, fg, u, v, scale, [0, 1])
    for i in range(2):
        s = comp.compose(i)
        assert s["image"].shape == (3, 224, 224)
        inside = s["mask"][0] > 0
        assert inside.sum() > 50
        cam = sources.backgrounds[bg[i]].camera
        assert (s["depth"][0][inside] == np.float32(cam.ground_depth(v[i]))).all()
