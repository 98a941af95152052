"""Manifests: counts per stage, recorded sha256, split hygiene, placements on visible ground."""

import numpy as np
import pytest

from maskdepth.cli import main
from maskdepth.core.errors import MaskdepthError
from maskdepth.world import manifest as mf
from maskdepth.world.placement import SCALE_JITTER
from maskdepth.world.sources import SourceSpec


@pytest.mark.parametrize("stage,counts", [("playground", (24, 8, 8)), ("1k", (1000, 200, 200))])
def test_small_stage_counts_and_committed_csv(stage, counts):
    m = mf.build_manifest(stage)
    assert (m.count("train"), m.count("seen"), m.count("unseen")) == counts
    committed = mf.manifests_dir() / f"{stage}.csv"
    assert committed.read_text() == m.to_csv()
    parsed = mf.read_manifest_csv(committed, stage)
    for name in mf.COLUMNS:
        np.testing.assert_array_equal(parsed.columns[name], m.columns[name])
    assert mf.verify_manifest(m) is True


def test_full_manifest_has_400k_train_samples_and_its_recorded_sha256():
    m = mf.load_manifest("full")  # verifies against data_manifests/spec.json
    assert (m.count("train"), m.count("seen"), m.count("unseen")) == (400_000, 4000, 4000)
    train = m.rows("train")
    # 100 bg x 100 fg x 20 placements x 2 flips, each combination exactly once.
    key = ((m.columns["bg"][train] * 100 + m.columns["fg"][train]) * 20 + m.columns["placement"][train]) * 2
    key = key + m.columns["flip"][train]
    assert np.array_equal(np.sort(key), np.arange(400_000))


@pytest.mark.parametrize("stage", ["playground", "1k", "full"])
def test_splits_keep_unseen_sources_out_of_training(stage):
    m = mf.load_manifest(stage)
    c = m.columns
    train, seen, unseen = m.rows("train"), m.rows("seen"), m.rows("unseen")
    assert c["bg"][train].max() < 100 and c["fg"][train].max() < 100
    assert c["bg"][unseen].min() >= 100 and c["fg"][unseen].min() >= 100
    assert not set(c["bg"][unseen]) & set(c["bg"][train])
    assert not set(c["fg"][unseen]) & set(c["fg"][train])
    # seen: pairs from training, placements never used in training
    train_pairs = set(zip(c["bg"][train].tolist(), c["fg"][train].tolist()))
    assert set(zip(c["bg"][seen].tolist(), c["fg"][seen].tolist())) <= train_pairs
    assert c["placement"][seen].min() >= mf.PLACEMENTS_PER_PAIR > c["placement"][train].max()
    # every placement appears unflipped and flipped
    assert np.array_equal(c["flip"], np.tile([0, 1], len(m) // 2))
    assert np.array_equal(c["u"][0::2], c["u"][1::2]) and np.array_equal(c["v"][0::2], c["v"][1::2])
    assert np.array_equal(c["id"], np.arange(len(m)))


def test_small_stages_are_subsets_of_the_same_placements():
    """A (bg, fg, placement) triple has the same foot point in every stage."""
    full = mf.load_manifest("full")
    small = mf.load_manifest("1k")
    rows = small.rows("train")
    c = small.columns
    full_row = (((c["bg"][rows] * 100 + c["fg"][rows]) * 20 + c["placement"][rows]) * 2 + c["flip"][rows])
    for name in ("u", "v", "scale"):
        np.testing.assert_array_equal(full.columns[name][full_row], c[name][rows])


def test_foot_points_lie_on_walkable_floor_of_their_view():
    """Every foot point is on visible ground (below the horizon, inside the image) and, where
    the scene bounds the floor, between the side walls and in front of walls, steps and facades."""
    from maskdepth.world.camera import Camera
    from maskdepth.world.sources import SourceSpec, scene_table, view_cameras

    m = mf.load_manifest("1k")
    spec = SourceSpec()
    bg, placement = m.columns["bg"], m.columns["placement"]
    u, v = m.values("u"), m.values("v")
    assert ((u >= 0) & (u <= 1) & (v > 0) & (v < 1)).all()
    scenes = scene_table(spec)
    scale = m.values("scale")  # the scene's size factor (miniatures on a desk) times the jitter
    size_lo = np.array([scenes[b].object_scale[0] for b in bg]) * (1 - SCALE_JITTER) - 1e-6
    size_hi = np.array([scenes[b].object_scale[1] for b in bg]) * (1 + SCALE_JITTER) + 1e-6
    assert ((scale >= size_lo) & (scale <= size_hi)).all()
    assert (scale < 0.5).mean() > 0.05  # miniatures occur
    cam = Camera(**view_cameras(spec, bg, placement))
    x, z, depth = cam.ground_point(u, v)
    assert np.isfinite(depth).all() and (depth > 0).all()
    walk_x = np.array([scenes[b].walk_x for b in bg])
    walk_z = np.array([scenes[b].walk_z for b in bg])
    on_floor = (x >= walk_x[:, 0] - 1e-3) & (x <= walk_x[:, 1] + 1e-3) & (z <= walk_z + 1e-3)
    assert on_floor.mean() > 0.95, on_floor.mean()  # the rest: the last-resort bottom-centre point


def test_held_out_families_never_occur_in_a_train_split():
    """Scene, object and texture families and the camera range of the ood split are absent from
    the train split of every stage (object families not even as unlabelled clutter), every ood
    sample holds at least one held-out family, and every held-out scene family (`terrace`, the
    close-range `shelf` and `workshop`) occurs in the ood split."""
    from maskdepth.world import backgrounds, foregrounds, textures
    from maskdepth.world.camera import TRAIN_HEIGHT_MAX, draw_cameras
    from maskdepth.world.sources import SourceSpec, object_table, scene_table, view_cameras

    assert {"terrace", "shelf", "workshop"} <= set(backgrounds.OOD_FAMILIES)

    spec = SourceSpec()
    scenes, objects = scene_table(spec), object_table(spec)

    def kinds(prims_or_textures):
        return {t["kind"] for t in prims_or_textures}

    def scene_textures(scene):
        sc = scene.scene
        out = [p.texture for p in sc["clutter"]]
        for key in ("floor_tex", "ceiling_tex", "ground_tex"):
            if key in sc:
                out.append(sc[key])
        out += sc.get("wall_tex", []) + [r["tex"] for r in sc.get("rows", [])]
        out += (sc.get("walls") or {}).get("tex", [])
        return out

    for stage in ("playground", "1k", "full"):
        m = mf.load_manifest(stage)
        for split in ("train", "seen", "unseen"):
            rows = m.rows(split)
            bg_ids, fg_ids = np.unique(m.columns["bg"][rows]), np.unique(m.columns["fg"][rows])
            assert not {scenes[b].family for b in bg_ids} & set(backgrounds.OOD_FAMILIES)
            assert not {objects[f].family for f in fg_ids} & set(foregrounds.OOD_FAMILIES)
            clutter_objects = set().union(*(scenes[b].scene["objects"] for b in bg_ids))
            assert not clutter_objects & set(foregrounds.OOD_FAMILIES), (stage, split)
            used = set().union(*(kinds(scene_textures(scenes[b])) for b in bg_ids),
                               *(kinds(p.texture for p in objects[f].parts) for f in fg_ids))
            assert not used & set(textures.OOD_KINDS), (stage, split)
            cams = view_cameras(spec, m.columns["bg"][rows], m.columns["placement"][rows])
            assert cams["height"].max() <= TRAIN_HEIGHT_MAX
            # the drawn range, before a scene of its own scale (a desk) maps it onto its own
            drawn = draw_cameras(spec.seed, m.columns["bg"][rows], m.columns["placement"][rows])
            assert drawn["height"].max() <= TRAIN_HEIGHT_MAX
        ood = m.rows("ood")
        assert {objects[f].family for f in m.columns["fg"][ood]} <= set(foregrounds.OOD_FAMILIES)
        if stage != "playground":
            assert {scenes[b].family for b in m.columns["bg"][ood]} & set(backgrounds.OOD_FAMILIES)
            drawn = draw_cameras(spec.seed, m.columns["bg"][ood], m.columns["placement"][ood], ood=True)
            assert (drawn["height"] > TRAIN_HEIGHT_MAX).mean() > 0.3
        if stage == "full":
            assert set(backgrounds.OOD_FAMILIES) <= {scenes[b].family for b in m.columns["bg"][ood]}


def test_changed_generator_fails_verification(tmp_path):
    import json
    import shutil

    shutil.copy(mf.manifests_dir() / "spec.json", tmp_path / "spec.json")
    spec = json.loads((tmp_path / "spec.json").read_text())
    spec["stages"]["playground"]["sha256"] = "0" * 64
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(MaskdepthError, match="generator changed"):
        mf.verify_manifest(mf.build_manifest("playground"), tmp_path)
    assert mf.verify_manifest(mf.build_manifest("playground", seed=5), tmp_path) is False


def test_different_seed_gives_different_placements():
    a, b = mf.build_manifest("playground", 0), mf.build_manifest("playground", 1, SourceSpec(seed=1))
    assert a.sha256() != b.sha256()


def test_read_manifest_csv_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(mf.COLUMNS) + "\n0,train,1,2,3,0.500000,0.700000,1.0,0\n")
    with pytest.raises(MaskdepthError, match=r"bad\.csv: line 2: scale needs 6 decimals"):
        mf.read_manifest_csv(bad)


def test_cli_manifest_prints_count_and_verified_sha(capsys):
    assert main(["data", "manifest", "--stage", "playground"]) == 0
    out = capsys.readouterr().out
    assert "48 samples (train 24, seen 8, unseen 8, ood 8)" in out
    assert mf.read_data_spec()["stages"]["playground"]["sha256"] in out
    assert "verified" in out


def test_cli_unknown_stage_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "manifest", "--stage", "10k"])
    assert exc.value.code == 2
    assert "invalid choice: '10k'" in capsys.readouterr().err
    with pytest.raises(MaskdepthError, match="unknown stage"):
        mf.build_manifest("10k")


def test_cli_build_reports_counts_storage_and_time(capsys):
    # 40 px: a size no other test renders, so the views are rendered here whatever ran before
    assert main(["data", "build", "--stage", "playground", "--size", "40"]) == 0
    out = capsys.readouterr().out
    assert "48 samples (train 24, seen 8, unseen 8, ood 8)" in out
    views = len({(b, p) for b, p in zip(mf.load_manifest("playground").columns["bg"],
                                           mf.load_manifest("playground").columns["placement"])})
    assert f"120 backgrounds, 120 foregrounds, {views} views at 40px" in out
    assert f"rendered {views} views" in out and "MiB" in out
    assert main(["data", "build", "--stage", "playground", "--size", "40"]) == 0
    assert "found every view in the cache" in capsys.readouterr().out
    assert main(["data", "build", "--stage", "playground", "--size", "7"]) == 2
    assert "size=7" in capsys.readouterr().err
