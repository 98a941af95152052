"""Trainer: config, a short run's folder, exact resume after SIGKILL, NaN stop, DDP with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from maskdepth.checkpoint import load_checkpoint, load_model
from maskdepth.errors import MaskdepthError
from maskdepth.train import TrainConfig, TrainingDiverged, train

TINY = dict(data="playground", size=32, batch_size=8, val_batch_size=16, epochs=2, lr=3e-3,
            progress_bar=False, tensorboard=False, model_kwargs={"base_channels": 8})


def tiny_config(tmp_path, **overrides) -> TrainConfig:
    return TrainConfig.from_mapping({**TINY, "out_dir": str(tmp_path / "run"), **overrides})


# -- config -------------------------------------------------------------------------------
def test_config_rejects_unknown_and_bad_values():
    with pytest.raises(MaskdepthError, match="unknown training parameter.*epoch_count"):
        TrainConfig.from_mapping({"epoch_count": 3})
    with pytest.raises(MaskdepthError, match="optimizer='rmsprop'"):
        TrainConfig.from_mapping({"optimizer": "rmsprop"})
    with pytest.raises(MaskdepthError, match="predicts one task"):
        TrainConfig.from_mapping({"model": "lean_unet", "task": "joint"})
    with pytest.raises(MaskdepthError, match="best_metric"):
        TrainConfig.from_mapping({"best_metric": "iou"})
    with pytest.raises(MaskdepthError, match="batch_size"):
        TrainConfig.from_mapping({"batch_size": 0})


def test_from_namespace_picks_only_config_fields():
    cfg = TrainConfig.from_namespace({"epochs": 7, "lr": 0.5, "In": [], "run_dir": "x", "_": None})
    assert (cfg.epochs, cfg.lr) == (7, 0.5)
    assert cfg.in_channels == 3 and cfg.tasks == ("mask", "depth")


# -- a short run --------------------------------------------------------------------------
def test_short_run_writes_the_run_folder(tmp_path):
    cfg = tiny_config(tmp_path, tensorboard=True, grid_every=1)
    metrics = train(cfg)
    run = Path(cfg.out_dir)
    for name in ("config.json", "history.json", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    history = json.loads((run / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]
    for record in history:
        for split in ("seen", "unseen"):
            assert 0.0 <= record[split]["iou"] <= 1.0
            assert record[split]["abs_rel"] > 0
        assert record["samples_per_s"] > 0 and record["train"]["loss"] > 0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["epochs"] == 2 and saved["params"] == metrics["params"] > 0
    best_epoch = saved["best_epoch"]
    assert saved["unseen"] == history[best_epoch - 1]["unseen"]
    # the checkpoint alone rebuilds the model and reproduces its metrics' source
    model, info = load_model(run / "checkpoints" / "last.pt")
    assert info["input_size"] == [32, 32] and info["task"] == "joint" and info["epoch"] == 2
    out = model(torch.rand(1, 3, 32, 32))
    assert set(out) == {"mask", "depth"}
    # a second run into the same folder without resume is refused (nothing overwritten)
    with pytest.raises(MaskdepthError, match="already holds a run"):
        train(tiny_config(tmp_path))


def test_single_task_depth_model_and_six_channels(tmp_path):
    cfg = tiny_config(tmp_path, model="lean_unet", task="depth", input_mode="bg_fg_bg", epochs=1,
                      model_kwargs={}, best_metric="unseen.abs_rel", depth_loss="densedepth")
    metrics = train(cfg)
    assert "iou" not in metrics["unseen"] and metrics["unseen"]["delta1"] >= 0
    ckpt = load_checkpoint(Path(cfg.out_dir) / "checkpoints" / "best.pt")
    assert ckpt["model_spec"]["in_channels"] == 6 and ckpt["info"]["input_mode"] == "bg_fg_bg"


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, monkeypatch):
    import maskdepth.losses as losses

    real = losses.build_loss

    def poisoned(**kwargs):
        crit = real(**kwargs)
        calls = {"n": 0}
        forward = crit.forward

        def wrapped(pred, target):
            out = forward(pred, target)
            if crit.training:
                calls["n"] += 1
                if calls["n"] > 3:  # epoch 1 has 3 steps: epoch 2 diverges
                    out = {**out, "loss": out["loss"] * float("nan")}
            return out

        crit.forward = wrapped
        return crit

    monkeypatch.setattr(losses, "build_loss", poisoned)
    cfg = tiny_config(tmp_path, epochs=3)
    with pytest.raises(TrainingDiverged, match="non-finite loss.*epoch 2"):
        train(cfg)
    ckpt = load_checkpoint(Path(cfg.out_dir) / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


# -- exact resume after SIGKILL ----------------------------------------------------------------
RUNNER = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    import maskdepth.train as T
    cfg = T.TrainConfig.from_mapping(json.loads(sys.argv[1]))
    kill_at = int(sys.argv[2])
    if kill_at:
        real_after_step = T.Schedule.after_step
        def after_step(self):
            real_after_step(self)
            if self._steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        T.Schedule.after_step = after_step
    T.train(cfg)
    """
)


def _run_training(params: dict, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", RUNNER, json.dumps(params), str(kill_at)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_resume_after_sigkill_gives_identical_weights(tmp_path):
    base = {**TINY, "epochs": 3, "augment": True}
    ref = _run_training({**base, "out_dir": str(tmp_path / "ref")})
    assert ref.returncode == 0, ref.stderr
    killed = _run_training({**base, "out_dir": str(tmp_path / "cut")}, kill_at=8)  # mid epoch 3 (3 steps/epoch)
    assert killed.returncode == -9, killed.stderr
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["epoch"] == 2
    resumed = _run_training({**base, "out_dir": str(tmp_path / "cut"), "resume": True})
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    hist = json.loads((tmp_path / "cut" / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in hist] == [1, 2, 3]


# -- DDP ---------------------------------------------------------------------------------------
DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    from maskdepth.train import TrainConfig, Trainer
    cfg = TrainConfig.from_mapping(json.loads(sys.argv[1]))
    trainer = Trainer(cfg)
    trainer.fit()
    rank = dist.get_rank()
    torch.save(trainer.model.state_dict(), os.path.join(sys.argv[2], f"rank{rank}.pt"))
    dist.destroy_process_group()
    """
)


def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    params = {**TINY, "epochs": 1, "out_dir": str(tmp_path / "run")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
         str(script), json.dumps(params), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    assert set(a) == set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # rank 0 alone wrote the run folder
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2


def test_cli_train_flags(tmp_path):
    from maskdepth.cli import main

    rc = main(["train", "--data", "playground", "--size", "32", "--epochs", "1", "--batch-size", "8",
               "--no-tensorboard", "--no-progress-bar", "--model-kwargs", '{"base_channels": 8}',
               "--out-dir", str(tmp_path / "cli")])
    assert rc == 0
    cfg = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["batch_size"] == 8 and cfg["model_kwargs"] == {"base_channels": 8}
    assert main(["train", "--optimizer", "nope", "--out-dir", str(tmp_path / "bad")]) == 2
