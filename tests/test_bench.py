"""The benchmark stays out of the test run: it imports, a dry run lists every figure without
measuring or writing anything, and the new figures' machinery runs on tiny settings (seconds)."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a top-level folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))


def test_bench_imports_and_dry_run_lists_every_figure(tmp_path, capsys):
    from bench import run

    assert run.main(["--dry-run", "--quick", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for figure in run.FIGURES:
        assert f"{figure.number}. {figure.name}" in listed
    assert [f.number for f in run.FIGURES] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(tmp_path.iterdir()) == []  # a dry run measures and writes nothing
    assert set(run.RATIO_KEYS) == {"joint_vs_seed_train", "loader_over_model", "time_to_quality_vs_seed"}
    assert [f.name for f in run.select_figures("loader,1,quality")] == ["train", "loader", "quality"]
    with pytest.raises(SystemExit):
        run.main(["--dry-run", "--only", "no-such-figure"])
    for bad in ("0", "1,x", ""):
        with pytest.raises(SystemExit):
            run.main(["--dry-run", "--quality-minutes", bad])
    assert run.parse_args(["--quality-minutes", "1,2.5"]).quality_minutes == (1.0, 2.5)


def tiny_settings(**overrides):
    from bench.settings import make_settings

    values = dict(threads=1, size=32, quality_data="playground", quality_batch=8, quality_budgets_s=(0.5, 1.0),
                  quality_curve_points=2, quality_max_epochs=1, quality_val_samples=8, profile_steps=1)
    return make_settings(True, **{**values, **overrides})


def test_quality_at_equal_wall_clock_on_tiny_settings(tmp_path):
    from bench import fig_quality

    result = fig_quality.run(tiny_settings(), tmp_path)
    capstone, ours = result["seed"], result["ours"]
    assert result["budgets_s"] == [0.5, 1.0] and result["score_times_s"] == [0.5, 1.0]
    for side in (capstone, ours):
        assert side["curve"][0]["step"] == 0 and side["curve"][0]["train_s"] == 0.0  # scored untrained
        assert [c["step"] for c in side["curve"]] == sorted({c["step"] for c in side["curve"]})
        assert side["steps"] >= 1 and side["train_s"] > 0
        assert set(fig_quality.TARGET_METRICS) | {"abs_rel"} <= set(side["curve"][-1])
    assert capstone["train_s"] >= 1.0 and not capstone["finished_early"]  # the capstone's way trains to the last budget
    assert ours["train_s"] >= 1.0 or ours["finished_early"]  # ours: the last budget, or its epochs ran out
    rows = result["at_budgets"]
    assert [r["at"] for r in rows] == ["untrained (step 0)", "after 0.5 s of training", "after 1 s of training"]
    for row, budget in zip(rows[1:], result["budgets_s"]):
        assert row["seed"]["train_s"] >= budget
        assert row["ours"]["train_s"] >= budget or (ours["finished_early"] and row["ours"] is ours["curve"][-1])
    # the target is only what both untrained nets fall short of
    for key, value in result["target"].items():
        assert value > capstone["untrained"][key] and value > ours["untrained"][key]
    assert set(result["target"]) | set(result["target_left_out"]) == set(fig_quality.TARGET_METRICS)
    hit = result["ours_time_to_target"]
    assert (result["ratio"] is None) == (hit is None)
    if hit is not None:
        assert fig_quality.reached(hit, result["target"])
        assert result["ratio"] == pytest.approx(capstone["train_s"] / hit["train_s"])
    assert result["attachments"]["quality.png"].startswith(b"\x89PNG")
    assert len(result["table"]) == len(rows) + 2
    json.dumps({k: v for k, v in result.items() if k != "attachments"})  # the results file takes it as it is


def test_scoring_times_and_their_clock():
    from bench.fig_quality import Clock, Due, reached, score_times

    assert score_times([60, 120, 300, 600], 4) == [60.0, 120.0, 150.0, 300.0, 450.0, 600.0]
    clock = Clock()
    due = Due(clock, [1.0, 2.0, 3.0])
    clock.total = 0.5
    assert not due()
    clock.total = 2.5  # two times passed: one scoring
    assert due() and not due() and not due.done
    clock.total = 3.0
    assert due() and due.done
    assert not reached({"iou": 1.0}, {})  # no target is never reached
    assert reached({"iou": 0.5, "delta1": 0.4}, {"iou": 0.5}) and not reached({"iou": 0.4}, {"iou": 0.5})


def test_training_clock_stops_while_evaluating():
    from bench.fig_quality import Clock

    clock = Clock()
    clock.start()
    clock.pause()
    paused = clock.seconds
    assert clock.seconds == paused  # no time passes while paused
    clock.start()
    assert clock.seconds >= paused


def test_profile_summary_groups_self_time_by_resolution(tmp_path):
    from bench import run
    from bench.profile_step import batch_for_profile, markdown, profile_steps
    from bench.steps import default_rig, fixed_batch
    from maskdepth.datasets.dataset import build_dataset

    batch = batch_for_profile(fixed_batch(build_dataset("playground", "train", size=32), 2, channels_last=True), 3)
    assert batch["image"].shape[0] == 3 and batch["image"].is_contiguous(memory_format=torch.channels_last)
    prof = profile_steps(default_rig(autocast="off"), batch, steps=1, size=32)
    shares = [info["share"] for info in prof["by_resolution"].values()]
    assert sum(shares) == pytest.approx(1.0)
    assert "full resolution (32x32)" in prof["by_resolution"] and prof["top_ops"]
    text = markdown({"float32": prof}, "tiny")
    assert "full resolution (32x32)" in text and "convolution" in text
    figures = {"compute": {"attachments": {"profile.md": text}}}
    run.write_attachments(figures, tmp_path / "day-host.json")
    assert (tmp_path / "day-host-profile.md").read_text() == text
    assert figures["compute"] == {"files": {"profile.md": "day-host-profile.md"}}


def test_gpu_feed_estimate_arithmetic():
    from bench.fig_loader import ASSUMED_UTILISATION, H100_BF16_TFLOPS, gpu_feed_estimate

    est = gpu_feed_estimate(1000.0, 2000.0, 1.5, workers=8, batch=256)
    step = H100_BF16_TFLOPS * 1e12 * ASSUMED_UTILISATION / 1.5e9
    assert est["feed_samples_per_s"] == 8000.0 and est["step_samples_per_s"] == pytest.approx(step)
    assert est["feed_over_step"] == pytest.approx(8000.0 / step)
    assert est["workers_needed"] == -(-step // 1000) and est["step_s"] == pytest.approx(256 / step)


def test_trainer_augment_is_the_trainers_batch_augmentation():
    """bench.steps.trainer_augment = channels_last, zoom, photometric with the config's settings."""
    from bench.steps import default_config, trainer_augment
    from maskdepth.augment.photometric import augment_batch
    from maskdepth.augment.zoom import zoom_batch
    from maskdepth.datasets.dataset import build_dataset

    ds = build_dataset("playground", "train", size=32)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    cfg = default_config("playground", zoom=1.4)
    out = trainer_augment(batch, cfg, epoch=2)
    want = augment_batch(zoom_batch(batch, cfg.seed, 2, 1.4), cfg.seed, 2, cfg.photometric)
    for key in ("image", "bg", "mask", "depth"):
        assert torch.allclose(out[key], want[key], atol=1e-6), key
    assert out["image"].is_contiguous(memory_format=torch.channels_last) == cfg.channels_last


def test_attachments_may_be_bytes(tmp_path):
    from bench import run

    figures = {"quality": {"attachments": {"quality.png": b"\x89PNG..."}}}
    run.write_attachments(figures, tmp_path / "day-host.json")
    assert (tmp_path / "day-host-quality.png").read_bytes() == b"\x89PNG..."
    assert figures["quality"] == {"files": {"quality.png": "day-host-quality.png"}}


def test_manifest_hash_is_computed_every_repeat():
    """Figure 5 hashes the rows afresh: a digest memoised on the manifest is never what it times."""
    import hashlib

    from bench.fig_data import fresh_copy, hash_rate
    from maskdepth.world.manifest import build_manifest

    manifest = build_manifest("playground", seed=0)
    real = hashlib.sha256(manifest.to_csv().encode()).hexdigest()
    assert fresh_copy(manifest).sha256() == real
    found = hash_rate(manifest, 2)
    assert found["rows"] == len(manifest) and len(found["times_s"]) == 2 and found["rows_per_s"] > 0
    assert found["digest_matches"]
    manifest._sha = "memoised"  # a stale memo: the timed hashes do not read it
    assert not hash_rate(manifest, 1)["digest_matches"]


def test_full_stage_loaders_draw_each_row_once_from_a_store_of_those_rows(tmp_path):
    """Figure 2's full-stage loaders on a small stage (no store in the cache): the store traced for
    the drawn rows composes them exactly as tracing does, and the loaders never start a 2nd epoch."""
    import numpy as np

    from bench import fig_loader
    from bench.steps import default_config

    settings = tiny_settings(batch=4)
    cfg = default_config("playground", batch_size=4)
    store_set, traced_set, plain_set, info = fig_loader.full_stage_sets(settings, cfg, 8, tmp_path, stage="playground")
    assert traced_set.composer.store is None and store_set.composer.store is plain_set.composer.store
    assert "traced here for the 8 rows drawn" in info["store"] and 1 <= info["objects"] <= 8
    rows = fig_loader.first_rows(store_set, 4, 8)
    assert len(set(rows)) == 8
    first = next(iter(fig_loader.loader_of(plain_set, 4)))
    assert first["index"].tolist() == rows[:4]  # the rows drawn are the loader's first
    for i in rows:
        a, b = store_set.compose(i), traced_set.compose(i)
        for key in ("image", "mask", "depth"):
            assert np.array_equal(a[key], b[key]), key
    batches = fig_loader.one_epoch(fig_loader.loader_of(plain_set, 4), "tiny")
    with pytest.raises(RuntimeError, match="first epoch ran out"):
        for _ in range(len(plain_set) // 4 + 1):
            next(batches)


def test_predict_figure_end_to_end_on_tiny_photos(tmp_path):
    from bench import fig_predict

    settings = tiny_settings(predict_sizes=((60, 80),), predict_images=(2,), predict_repeats=1, predict_folder=3,
                             predict_folder_size=(48, 64))
    result = fig_predict.run(settings, tmp_path)
    assert result["checkpoint"]["model"] == "joint" and result["checkpoint"]["weights"] == "random (untrained)"
    assert [c["name"] for c in result["cases"]] == ["0.0048 Mpx", "folder of 3"]
    for case in result["cases"]:
        assert case["images_timed"] == case["images"] * case["repeats"] and case["images_per_s"] > 0
        assert case["outputs_per_image"] == fig_predict.OUTPUTS_PER_IMAGE and case["predictions_json"]
        assert case["predictions_listed"] == case["images"] and case["upsample"] == "guided"
        assert set(case["ms_per_image"]) == set(fig_predict.PARTS)
        assert case["seconds"]["model"] > 0 and case["seconds"]["decode"] > 0 and case["seconds"]["encode_write"] > 0
        assert sum(case["seconds"].values()) == pytest.approx(case["wall_s"], rel=0.02)
        memory = case["memory"]
        assert memory["peak_mb"] >= memory["rss_before_mb"] > 0
    assert len(result["table"]) == len(result["cases"]) + 1
    json.dumps(result)


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """The prepared GPU script (make gpu-check) in its CPU dry run: every step runs and is recorded."""
    from bench import gpu_check

    out = tmp_path / "check.json"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["dry_run"] and record["ok"] and record["device"] == "cpu"
    assert list(record["steps"]) == ["hardware_tests", "figure_6", "full_stage_run"]
    assert all(step["status"] == 0 for step in record["steps"].values())
    assert "tests collected" in record["steps"]["hardware_tests"]["output_tail"] or "selected" in \
        record["steps"]["hardware_tests"]["output_tail"]
    assert record["full_stage_run"]["splits"]["seen"]  # the short run was validated
