"""Sources: exact background depth, byte-level determinism, the spec-keyed cache."""

import numpy as np
import pytest

from maskdepth.data.backgrounds import background_params, pixel_centres, render_background
from maskdepth.data.foregrounds import foreground_params, render_foreground
from maskdepth.data.sources import SourceSpec, load_sources
from maskdepth.depth import DEPTH_MAX, DEPTH_MIN
from maskdepth.errors import MaskdepthError


def test_same_seed_same_bytes_different_seed_different():
    for bg_id in (0, 7):
        a = render_background(background_params(0, bg_id), 24)
        b = render_background(background_params(0, bg_id), 24)
        c = render_background(background_params(1, bg_id), 24)
        assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
        assert a[0].tobytes() != c[0].tobytes()
    fa, _ = render_foreground(foreground_params(0, 3), 32)
    fb, _ = render_foreground(foreground_params(0, 3), 32)
    fc, _ = render_foreground(foreground_params(5, 3), 32)
    assert fa.tobytes() == fb.tobytes()
    assert fa.shape != fc.shape or fa.tobytes() != fc.tobytes()


@pytest.mark.parametrize("bg_id", range(6))
def test_bottom_row_depth_is_the_analytic_ground_depth(bg_id):
    """The lowest pixel row sees the floor: its depth is h / (y_c cos + sin) at the row centre."""
    bg = background_params(0, bg_id)
    size = 40
    _, depth = render_background(bg, size)
    v = pixel_centres(size)[-1]
    expected = np.float32(bg.camera.ground_depth(v))
    # The middle column looks straight ahead: floor for indoor rooms and outdoor streets alike.
    assert depth[-1, size // 2] == expected
    assert DEPTH_MIN <= depth.min() and depth.max() <= DEPTH_MAX
    # Depth grows towards the horizon along the floor.
    assert depth[-1, size // 2] < depth[-4, size // 2]


def test_depth_is_exact_at_any_size():
    bg = background_params(0, 2)
    for size in (16, 64, 224):
        _, depth = render_background(bg, size)
        assert depth.shape == (size, size)
        assert depth[-1, size // 2] == np.float32(bg.camera.ground_depth(pixel_centres(size)[-1]))


def test_camera_helpers_are_inverse():
    cam = background_params(0, 4).camera
    depth = np.array([1.5, 3.0, 12.0])
    v = cam.v_of_ground_depth(depth)
    np.testing.assert_allclose(cam.ground_depth(v), depth, rtol=1e-12)
    z = cam.ground_z_of_depth(depth)
    _, v_proj, d_proj = cam.project(np.zeros(3), np.zeros(3), z)
    np.testing.assert_allclose(v_proj, v, rtol=1e-12)
    np.testing.assert_allclose(d_proj, depth, rtol=1e-12)


TINY = dict(n_bg=2, n_fg=2, n_bg_unseen=1, n_fg_unseen=1, fg_resolution=24)


def test_cache_is_reused_and_rebuilt_when_the_spec_changes(tmp_path):
    first = load_sources(SourceSpec(**TINY), 16, tmp_path, rebuild=True)
    assert first.report["built"] == ["foregrounds", "backgrounds"]
    again = load_sources(SourceSpec(**TINY), 16, tmp_path, rebuild=False)
    assert again is first  # memoised in-process
    from maskdepth.data import sources as sources_module

    sources_module._MEMO.clear()
    reloaded = load_sources(SourceSpec(**TINY), 16, tmp_path)
    assert reloaded.report["built"] == []
    assert reloaded.bg_rgb.tobytes() == first.bg_rgb.tobytes()
    assert reloaded.fg_atlas.tobytes() == first.fg_atlas.tobytes()
    changed = load_sources(SourceSpec(seed=3, **TINY), 16, tmp_path)
    assert changed.report["built"] == ["foregrounds", "backgrounds"]
    assert changed.folder != first.folder
    assert changed.bg_rgb.tobytes() != first.bg_rgb.tobytes()
    # A new size only renders the backgrounds.
    assert load_sources(SourceSpec(**TINY), 20, tmp_path).report["built"] == ["backgrounds"]


def test_damaged_cache_file_is_rebuilt(tmp_path):
    from maskdepth.data import sources as sources_module

    first = load_sources(SourceSpec(**TINY), 16, tmp_path, rebuild=True)
    path = first.folder / "bg_s016.depth.npy"
    path.write_bytes(path.read_bytes()[:-8])
    sources_module._MEMO.clear()
    fixed = load_sources(SourceSpec(**TINY), 16, tmp_path)
    assert fixed.report["built"] == ["backgrounds"]
    assert fixed.bg_depth.tobytes() == first.bg_depth.tobytes()


@pytest.mark.parametrize("size", [0, 8, 1000, 64.0, "64", True])
def test_bad_size_is_a_clear_error(size, tmp_path):
    with pytest.raises(MaskdepthError, match="size="):
        load_sources(SourceSpec(**TINY), size, tmp_path)


def test_default_sources_have_the_recorded_reference_bytes():
    """Same seed -> the very bytes recorded in data_manifests/spec.json (made on another run/machine)."""
    from maskdepth.data.manifest import read_data_spec, reference_match

    ref = read_data_spec()["reference_sources"]
    report = load_sources(SourceSpec(), ref["size"]).report
    assert reference_match(report, ref["size"], 0) is True
    assert reference_match(report, ref["size"], 1) is None
