"""The synthetic world (generator v5): exact labels for every primitive, determinism, composition."""

import numpy as np
import pytest

from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.dataset import build_dataset
from maskdepth.world import foregrounds
from maskdepth.world import manifest as mf
from maskdepth.world.camera import Camera, rational_angle
from maskdepth.world.composition import Composer, reference_digest, render_sample
from maskdepth.world.foregrounds import Foreground, render_object
from maskdepth.world.shapes import Primitive, intersect
from maskdepth.world.sources import SourceSpec, load_sources, render_one_view

LEVEL = Camera(height=1.0, sin_pitch=0.0, cos_pitch=1.0, focal=1.0)
GREY = {"kind": "gradient", "c1": np.array([0.5, 0.5, 0.5]), "c2": np.array([0.4, 0.4, 0.4]), "scale": 1.0, "key": 0}


def _tilted(height=1.3):
    sp, cp = rational_angle(0.15)
    sr, cr = rational_angle(0.03)
    sy, cy = rational_angle(-0.1)
    return Camera(height, float(sp), float(cp), 0.8, float(sr), float(cr), float(sy), float(cy), x=0.4)


def _grid(n):
    c = (np.arange(n) + 0.5) / n
    return np.meshgrid(c, c)


def test_camera_project_inverts_rays_with_roll_pitch_and_yaw():
    cam = _tilted()
    u, v = _grid(7)
    dx, dy, dz = cam.rays(u, v)
    t = 2.0 + u * 5.0  # any z-depth along each ray
    x, y, z = cam.x + t * dx, cam.height + t * dy, t * dz
    pu, pv, depth = cam.project(x, y, z)
    np.testing.assert_allclose(pu, u, atol=1e-12)
    np.testing.assert_allclose(pv, v, atol=1e-12)
    np.testing.assert_allclose(depth, t, rtol=1e-12)  # the ray parameter is the z-depth


def test_sphere_depth_at_its_centre_is_distance_minus_radius():
    distance, radius = 4.0, 0.7
    sphere = Primitive("ellipsoid", (0.0, 1.0, distance), (radius,) * 3)
    hit = intersect([sphere], (0.0, 1.0, 0.0), LEVEL.rays(0.5, 0.5))
    assert hit["t"] == pytest.approx(distance - radius, abs=1e-12)
    np.testing.assert_allclose([n for n in hit["normal"]], [0.0, 0.0, -1.0], atol=1e-12)
    # the same through an object rendered into a view (pose: foot on the ground under the sphere)
    ball = Foreground(0, "ball", 2 * radius, 2 * radius, [Primitive("ellipsoid", (0.0, 1.0, 0.0), (radius,) * 3, 1, GREY)])
    layer = render_object(ball, LEVEL, (0.0, distance, 0.0, 1.0, 1.0), 65, np.array([0.0, 1.0, 0.0]))
    y0, _, x0, _ = layer["window"]
    assert layer["depth"][32 - y0, 32 - x0] == np.float32(distance - radius)
    inside = np.isfinite(layer["depth"])
    assert layer["depth"][inside].max() > layer["depth"][32 - y0, 32 - x0] + 0.2  # relief: the rim is farther


def test_box_face_is_planar_in_camera_space_and_cylinder_points_are_on_its_surface():
    cam = _tilted()
    u, v = _grid(48)
    d = cam.rays(u, v)
    box = Primitive("box", (0.2, 0.4, 3.0), (0.5, 0.4, 0.3))
    hit = intersect([box], cam.origin, d)
    front = np.isfinite(hit["t"]) & (np.abs(hit["normal"][2] + 1.0) < 1e-12)
    assert front.sum() > 50
    # a plane in camera space: 1 / z-depth is affine in the image coordinates
    a = np.stack([u[front], v[front], np.ones(front.sum())], axis=1)
    coef, *_ = np.linalg.lstsq(a, 1.0 / hit["t"][front], rcond=None)
    assert np.abs(a @ coef - 1.0 / hit["t"][front]).max() < 1e-12
    np.testing.assert_allclose(hit["point"][2][front], 3.0 - 0.3, atol=1e-12)  # on the face z = 2.7
    cone = Primitive("cylinder", (-0.3, 0.0, 4.0), (0.5, 1.2, 0.1))
    hit = intersect([cone], cam.origin, d)
    side = np.isfinite(hit["t"]) & (np.abs(hit["normal"][1]) < 0.99)
    x, y, z = hit["point"]
    radius = 0.5 + (0.1 - 0.5) * y[side] / 1.2
    np.testing.assert_allclose(np.hypot(x[side] + 0.3, z[side] - 4.0), radius, atol=1e-9)
    assert (y[side] >= 0).all() and (y[side] <= 1.2).all()


def test_ground_pixels_of_a_view_have_the_analytic_ground_depth():
    spec = SourceSpec()
    for bg in (0, 3, spec.n_bg, spec.first_ood_bg):
        from maskdepth.world.sources import view_camera

        cam = view_camera(spec, bg, 2)
        view = render_one_view(spec, bg, 2, 32)
        ground = view["ground"]
        assert ground.sum() > 20
        u, v = _grid(32)
        _, dy, _ = cam.rays(u, v)
        np.testing.assert_array_equal(view["depth"][ground], np.float32(cam.height / -dy[ground]))


def _surface_distances(bg, cam, x, y, z) -> dict[str, np.ndarray]:
    """Distance from world points to every surface of scene `bg`, written from the scene's
    description (`Background.scene`), not from `trace`: the floor y = 0; indoors the ceiling
    (raised above a camera that would reach it), back, left, right and front walls; courtyard
    walls up to their height; facade rows (a plane z = row z, each building up to its height);
    the clutter solids (box faces, ellipsoid shell, frustum side and caps)."""
    s = bg.scene
    out = {"floor": np.abs(y)}
    if s["indoor"]:
        out.update({"ceiling": np.abs(y - max(s["ceiling"], cam.height + 0.3)), "wall back": np.abs(z - s["back"]),
                    "wall left": np.abs(x - s["left"]), "wall right": np.abs(x - s["right"]),
                    "wall front": np.abs(z + 1.5)})
    walls = s.get("walls")
    if walls:
        above = np.where(y > walls["height"], np.inf, 0.0)
        out.update({"wall back": np.abs(z - walls["back"]) + above, "wall left": np.abs(x - walls["left"]) + above,
                    "wall right": np.abs(x - walls["right"]) + above})
    for k, row in enumerate(s.get("rows", [])):
        building = np.clip(np.searchsorted(row["edges"], x) - 1, 0, len(row["heights"]) - 1)
        off = np.where((y >= 0.0) & (y <= row["heights"][building]), 0.0, np.inf)
        out[f"row {k}"] = np.abs(z - row["z"]) + off
    p = np.stack([x, y, z])
    for prim in s["clutter"]:
        c = np.asarray(prim.centre, dtype=np.float64).reshape(3, 1, 1)
        size = np.asarray(prim.size, dtype=np.float64)
        if prim.kind == "box":
            q = np.abs(p - c) - size.reshape(3, 1, 1)  # <= 0 along every axis inside
            d = np.sqrt((np.maximum(q, 0.0) ** 2).sum(0)) + np.maximum(-q.max(0), 0.0)
        elif prim.kind == "ellipsoid":
            d = np.abs(np.sqrt((((p - c) / size.reshape(3, 1, 1)) ** 2).sum(0)) - 1.0) * size.min()
        else:
            a, (b1, b2) = prim.axis, {0: (1, 2), 1: (0, 2), 2: (0, 1)}[prim.axis]
            r0, length, r1 = prim.size
            h = p[a] - prim.centre[a]
            radial = np.hypot(p[b1] - prim.centre[b1], p[b2] - prim.centre[b2])
            side = (np.abs(radial - (r0 + (r1 - r0) * np.clip(h, 0.0, length) / length))
                    + np.maximum(-h, 0.0) + np.maximum(h - length, 0.0))
            base = np.abs(h) + np.maximum(radial - r0, 0.0)
            top = np.abs(h - length) + np.maximum(radial - r1, 0.0)
            d = np.minimum(side, np.minimum(base, top))
        out[f"clutter {prim.kind}"] = np.minimum(out.get(f"clutter {prim.kind}", np.inf), d)
    return out


def test_every_background_pixel_back_projects_onto_a_scene_surface_or_reads_the_far_cap():
    """Not one floor pixel: every pixel of two views of one scene of each family (indoor and
    outdoor terraces, the ood cameras included) is back-projected with its depth label (z-depth
    along the pixel's ray) and must lie on a surface of the scene's geometry, or read the far
    cap DEPTH_MAX; a far pixel is one whose ray meets no floor before DEPTH_MAX, and closed
    (indoor) scenes have none."""
    from maskdepth.core.depth import DEPTH_MAX
    from maskdepth.world.sources import scene_table, view_camera

    spec = SourceSpec()
    first: dict[tuple[str, str], int] = {}
    for scene in scene_table(spec):
        first.setdefault((scene.family, scene.kind), scene.id)
    from maskdepth.world.backgrounds import FAMILIES

    assert {family for family, _ in first} == set(FAMILIES)
    size = 40
    u, v = _grid(size)
    surfaces_seen: set[str] = set()
    for (family, kind), bg_id in sorted(first.items()):
        bg = scene_table(spec)[bg_id]
        for placement in (0, 3):
            cam = view_camera(spec, bg_id, placement)
            view = render_one_view(spec, bg_id, placement, size)
            depth = view["depth"].astype(np.float64)
            dx, dy, dz = cam.rays(u, v)
            x, y, z = cam.x + depth * dx, cam.height + depth * dy, depth * dz
            distances = _surface_distances(bg, cam, x, y, z)
            names = list(distances)
            stacked = np.stack([distances[n] for n in names])
            nearest = stacked.min(0)
            far = view["depth"] == np.float32(DEPTH_MAX)
            where = f"bg {bg_id} ({family}, {kind}) placement {placement}"
            off = ~far & (nearest > 1e-6 * depth)  # float32 labels: about 1e-7 relative
            assert not off.any(), f"{where}: {off.sum()} pixels off every surface, worst {nearest[off].max():.3g} m"
            with np.errstate(divide="ignore"):
                floor_t = np.where(dy < 0.0, cam.height / -dy, np.inf)
            assert (floor_t[far] >= DEPTH_MAX * (1 - 1e-6)).all(), f"{where}: a far pixel whose ray meets the floor"
            assert not (kind == "indoor" and far.any()), f"{where}: a closed scene with far pixels"
            near_ground = view["ground"] & ~far  # floor beyond the far cap reads DEPTH_MAX, checked above
            assert (distances["floor"][near_ground] <= 1e-6 * depth[near_ground]).all(), where
            surfaces_seen |= {names[i].split(" ")[0] if not names[i].startswith("clutter") else names[i]
                              for i in np.unique(stacked.argmin(0)[~far])}
    assert {"floor", "ceiling", "wall", "row", "clutter box", "clutter ellipsoid", "clutter cylinder"} <= surfaces_seen


def test_same_seed_same_bytes_different_seed_different_and_the_recorded_reference():
    a = render_sample(SourceSpec(), 5, 7, 3, 32)
    b = render_sample(SourceSpec(), 5, 7, 3, 32)
    c = render_sample(SourceSpec(seed=1), 5, 7, 3, 32)
    for key in ("image", "mask", "depth"):
        assert a[key].tobytes() == b[key].tobytes()
    assert a["image"].tobytes() != c["image"].tobytes()
    recorded = mf.read_data_spec()["reference_sources"]
    assert reference_digest(SourceSpec(), recorded["size"]) == recorded["sha256"]


@pytest.fixture(scope="module")
def train32():
    return build_dataset("playground", "train", size=32)


def test_labels_are_exact_and_shadows_never_touch_them(train32):
    c = train32.composer
    checked = 0
    for i in range(0, len(train32), 2):  # unflipped rows
        s = train32.compose(i)
        layer, shadow = c.object_layer(i)
        view_depth = c._view_depth[c._view_slot[i]]
        mask = s["mask"][0]
        assert set(np.unique(mask)) <= {0.0, 1.0}
        expected = np.zeros_like(mask, dtype=bool)
        obj_depth = np.full(mask.shape, np.inf, dtype=np.float32)
        if layer is not None:
            y0, y1, x0, x1 = layer["window"]
            obj_depth[y0:y1, x0:x1] = layer["depth"]
            expected = obj_depth < view_depth
        np.testing.assert_array_equal(mask, expected.astype(np.float32))
        np.testing.assert_array_equal(s["depth"][0], np.where(expected, obj_depth, view_depth))
        checked += expected.any()
        # the same row without its shadow: identical labels, and the image differs only by the shadow
        saved = c.shadow[i]
        c.shadow[i] = 0.0
        c._objects.clear()
        plain = train32.compose(i)
        c.shadow[i] = saved
        c._objects.clear()
        np.testing.assert_array_equal(plain["mask"], s["mask"])
        np.testing.assert_array_equal(plain["depth"], s["depth"])
        if shadow is not None and saved > 0 and (shadow[1] < 0.99).any():
            assert (s["image"] <= plain["image"] + 1e-6).all() and (s["image"] < plain["image"] - 1e-3).any()
        assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
    assert checked >= len(train32) // 2 - 1


def test_flip_mirrors_image_bg_mask_and_depth(train32):
    for i in range(0, len(train32), 2):
        a, b = train32.compose(i), train32.compose(i + 1)
        for key in ("image", "bg", "mask", "depth"):
            np.testing.assert_array_equal(a[key][..., ::-1], b[key], err_msg=key)


def test_nearer_foot_point_gives_a_larger_nearer_object():
    spec = SourceSpec()
    sources = load_sources(spec, 64)
    fg = next(f for f in sources.foregrounds if f.family == "crate")
    bg = next(b for b in sources.backgrounds if b.family == "open")
    from maskdepth.world.sources import view_camera

    cam = view_camera(spec, bg.id, 0)
    u, v, _ = cam.project(np.array([cam.x, cam.x]), np.zeros(2), np.array([9.0, 4.0]))
    comp = Composer(sources, [bg.id] * 2, [fg.id] * 2, [0, 0], u, v, [1.0, 1.0], [0, 0])
    far, near = comp.compose(0), comp.compose(1)
    assert near["mask"].sum() > 2.5 * far["mask"].sum()
    assert near["depth"][0][near["mask"][0] > 0].max() < far["depth"][0][far["mask"][0] > 0].min()


def test_object_sizes_span_one_to_forty_percent_on_the_1k_stage():
    ds = build_dataset("1k", "train", size=32)
    rng = np.random.default_rng(0)
    areas = np.array([ds.compose(int(i))["mask"].mean() for i in rng.choice(len(ds), 200, replace=False)])
    assert np.percentile(areas, 10) < 0.02 and np.percentile(areas, 95) > 0.2
    assert np.median(areas) > 0.03 and (areas == 0).mean() < 0.03


def test_views_are_cached_and_a_damaged_file_is_rendered_again(tmp_path):
    spec = SourceSpec(n_bg=2, n_fg=2, n_bg_unseen=0, n_fg_unseen=0, n_bg_ood=0, n_fg_ood=0)
    sources = load_sources(spec, 24, tmp_path)
    first = sources.views([0, 1], [0, 5])
    assert sources.report["views_built"] == 2
    again = load_sources(spec, 24, tmp_path)
    second = again.views([0, 1], [0, 5])
    assert again.report["views_built"] == 0 and second["rgb"].tobytes() == first["rgb"].tobytes()
    files = sorted(sources.folder.glob("*.npz"))
    files[0].write_bytes(b"not a view")
    third = again.views([0, 1], [0, 5])
    assert again.report["views_built"] == 1 and third["depth"].tobytes() == first["depth"].tobytes()
    assert load_sources(SourceSpec(seed=3, n_bg=2, n_fg=2), 24, tmp_path).folder != sources.folder


@pytest.mark.parametrize("size", [8, 513, 64.0, True])
def test_bad_size_is_a_clear_error(size, tmp_path):
    with pytest.raises(MaskdepthError, match="size="):
        load_sources(SourceSpec(), size, tmp_path)


def test_windowed_clutter_tracing_gives_the_same_bytes_as_tracing_every_ray():
    """`trace` tests each clutter solid only against the rays of its projected bounding box; on
    the most cluttered interiors (workshop, shelf, clutter) that must equal tracing every ray."""
    from maskdepth.world import backgrounds, shading
    from maskdepth.world.sources import scene_table, view_camera

    spec = SourceSpec()
    scenes = scene_table(spec)
    for family in ("workshop", "shelf", "clutter", "tabletop"):
        bg = next(s for s in scenes if s.family == family)
        cam = view_camera(spec, bg.id, 1)
        c = shading.pixel_centres(48)
        d = cam.rays(c[None, :], c[:, None])
        clutter = bg.scene["clutter"]
        full = intersect(clutter, cam.origin, d)
        windowed = intersect(clutter, cam.origin, d, windows=backgrounds._windows(clutter, cam, d[0].shape))
        assert np.isfinite(full["t"]).mean() > 0.01, family
        for key in ("t", "index"):
            assert full[key].tobytes() == windowed[key].tobytes(), (family, key)
        for a in range(3):
            assert full["normal"][a].tobytes() == windowed["normal"][a].tobytes(), (family, a)


def _silhouette_widths(fg, rows=48, cols=96):
    """Per height row (bottom first), the widest solid run in metres of the object's silhouette seen
    face-on and side-on (orthographic rays along z and along x, the wider of the two)."""
    lo, hi = fg.bounds()
    y = (np.arange(rows) + 0.5) * fg.height_m / rows
    widths = []
    for axis, (a, b) in ((2, (lo[0], hi[0])), (0, (lo[2], hi[2]))):
        across = a + (np.arange(cols) + 0.5) * (b - a) / cols
        u, v = np.meshgrid(across, y)
        start = [u, v, np.full(u.shape, lo[axis] - 1.0)] if axis == 2 else [np.full(u.shape, lo[0] - 1.0), v, u]
        hit = np.isfinite(intersect(fg.parts, tuple(start), (0.0, 0.0, 1.0) if axis == 2 else (1.0, 0.0, 0.0))["t"])
        run = np.zeros(hit.shape, dtype=int)
        for col in range(cols):
            run[:, col] = np.where(hit[:, col], (run[:, col - 1] if col else 0) + 1, 0)
        widths.append(run.max(1) * (b - a) / cols)
    return np.maximum(*widths)


@pytest.mark.parametrize("family", foregrounds.FAMILIES)
def test_every_object_family_stands_on_the_floor_in_one_piece(family):
    """Each object's lowest point is its foot on the ground and no height band of it floats."""
    pool = foregrounds.OOD_FAMILIES if family in foregrounds.OOD_FAMILIES else foregrounds.TRAIN_FAMILIES
    drawn = [fg for fg in (foregrounds.foreground_params(0, i, ood=family in foregrounds.OOD_FAMILIES)
                           for i in range(12 * len(pool))) if fg.family == family]
    assert len(drawn) >= 5, family
    for fg in drawn:
        lo, _ = fg.bounds()
        assert abs(lo[1]) < 1e-9, (family, fg.id)
        assert (_silhouette_widths(fg) > 0).all(), (family, fg.id)


@pytest.mark.parametrize("family", ["stool", "sign", "lamp"])
def test_stools_signs_and_lamps_carry_their_mass_on_a_thin_support(family):
    """What teaches the cue a floor lamp needs: a seat, board or shade carried on legs or posts a few
    centimetres thick, each under a third of the width above them."""
    ood = family in foregrounds.OOD_FAMILIES
    drawn = [fg for fg in (foregrounds.foreground_params(0, i, ood=ood) for i in range(150)) if fg.family == family]
    assert len(drawn) >= 5, family
    for fg in drawn:
        widths = _silhouette_widths(fg)
        rows = len(widths)
        support = widths[rows // 8: rows // 3]  # above any base plate, below the seat, board or shade
        assert support.max() < min(0.1, 0.3 * widths[rows // 3:].max()), (family, fg.id)
