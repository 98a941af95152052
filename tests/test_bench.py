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
    assert [f.number for f in run.FIGURES] == [1, 2, 3, 4, 5, 6, 7]
    assert list(tmp_path.iterdir()) == []  # a dry run measures and writes nothing
    assert set(run.RATIO_KEYS) == {"joint_vs_seed_train", "loader_over_model", "time_to_quality_vs_seed"}
    assert [f.name for f in run.select_figures("loader,1,quality")] == ["train", "loader", "quality"]
    with pytest.raises(SystemExit):
        run.main(["--dry-run", "--only", "no-such-figure"])
    with pytest.raises(SystemExit):
        run.main(["--dry-run", "--quality-epochs", "0"])


def tiny_settings(**overrides):
    from bench.settings import make_settings

    values = dict(threads=1, size=32, quality_data="playground", quality_batch=8, quality_seed_epochs=0.34,
                  quality_eval_every=1, quality_max_epochs=1, quality_val_samples=8, profile_steps=1)
    return make_settings(True, **{**values, **overrides})


def test_time_to_quality_figure_on_tiny_settings(tmp_path):
    from bench import fig_quality

    result = fig_quality.run(tiny_settings(), tmp_path)
    seed, ours = result["seed"], result["ours"]
    assert seed["steps"] == 1 and seed["train_s"] > 0
    assert set(result["target"]) == {"iou", "delta1"} and result["target"] == {k: seed["seen"][k] for k in ("iou", "delta1")}
    assert 1 <= ours["steps"] <= 3 and ours["curve"] and ours["train_s"] > 0
    assert [c["step"] for c in ours["curve"]] == sorted({c["step"] for c in ours["curve"]})
    if ours["reached"]:
        assert fig_quality.reached(ours["at_quality"], result["target"])
        assert result["ratio_at_first_check"] == pytest.approx(seed["train_s"] / ours["time_to_quality_s"])
    assert (result["ratio"] is None) == (not ours["reached"] or ours["untrained_reaches_target"])
    assert len(result["table"]) == 3
    json.dumps(result)  # the results file takes it as it is


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
    from maskdepth.data import build_dataset

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
    from maskdepth.data import build_dataset
    from maskdepth.data.photometric import augment_batch
    from maskdepth.data.zoom import zoom_batch

    ds = build_dataset("playground", "train", size=32)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    cfg = default_config("playground", zoom=1.4)
    out = trainer_augment(batch, cfg, epoch=2)
    want = augment_batch(zoom_batch(batch, cfg.seed, 2, 1.4), cfg.seed, 2, cfg.photometric)
    for key in ("image", "bg", "mask", "depth"):
        assert torch.allclose(out[key], want[key], atol=1e-6), key
    assert out["image"].is_contiguous(memory_format=torch.channels_last) == cfg.channels_last
