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

from maskdepth.core.errors import MaskdepthError
from maskdepth.models.checkpoint import load_checkpoint, load_model, save_checkpoint
from maskdepth.training.config import TrainConfig
from maskdepth.training.epoch import TrainingDiverged
from maskdepth.training.trainer import train

TINY = dict(data="playground", size=32, batch_size=8, val_batch_size=16, epochs=2, lr=3e-3,
            progress_bar=False, tensorboard=False, model_kwargs={"encoder": "lean", "context": False, "base_channels": 8})


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
        for split in ("seen", "unseen", "ood"):
            assert 0.0 <= record[split]["iou"] <= 1.0 and 0.0 <= record[split]["miou"] <= 1.0
            assert record[split]["abs_rel"] > 0 and 0.0 <= record[split]["sa_delta1"] <= 1.0
            assert {"obj_abs_rel", "ordering", "ordering_n", "iou_small"} <= set(record[split])
        assert record["samples_per_s"] > 0 and record["train"]["loss"] > 0
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["epochs"] == 2 and saved["params"] == metrics["params"] > 0
    assert saved["n_samples"] == {"seen": 8, "unseen": 8, "ood": 8}
    best_epoch = saved["best_epoch"]
    for split in ("seen", "unseen", "ood"):
        assert saved[split] == history[best_epoch - 1][split]
    # the checkpoint alone rebuilds the model and reproduces its metrics' source
    model, info = load_model(run / "checkpoints" / "last.pt")
    assert info["input_size"] == [32, 32] and info["task"] == "joint" and info["epoch"] == 2
    out = model(torch.rand(1, 3, 32, 32))
    assert set(out) == {"mask", "depth"}
    # a second run into the same folder without resume is refused (nothing overwritten)
    with pytest.raises(MaskdepthError, match="already holds a run"):
        train(tiny_config(tmp_path))


def test_a_dataset_without_ood_samples_trains_and_says_so(tmp_path, monkeypatch, capsys):
    import maskdepth.training.builders as B

    real_open = B.open_split
    monkeypatch.setattr(B, "open_split", lambda data, split, *a: None if split == "ood" else real_open(data, split, *a))
    metrics = train(tiny_config(tmp_path, epochs=1, progress_bar=False))
    assert metrics["ood"] == {} and metrics["n_samples"]["ood"] == 0 and metrics["seen"]["iou"] >= 0
    out = capsys.readouterr().out
    assert "no ood samples" in out and "ood:" not in out  # no ood part in the epoch line
    with pytest.raises(MaskdepthError, match="best_metric='ood.iou'.*no ood samples"):
        train(tiny_config(tmp_path / "b", epochs=1, best_metric="ood.iou"))


def test_best_metric_direction_comes_from_the_catalogue():
    from maskdepth.training.checkpoints import _is_better

    assert _is_better(0.9, 0.8, "seen.iou") and _is_better(0.9, 0.8, "ood.ordering")
    assert _is_better(0.1, 0.2, "seen.loss") and _is_better(0.1, 0.2, "unseen.sa_abs_rel")
    assert not _is_better(0.3, 0.2, "seen.abs_rel")
    assert TrainConfig.from_mapping({"best_metric": "seen.sa_delta1"}).best_metric == "seen.sa_delta1"
    with pytest.raises(MaskdepthError, match="best_metric='seen.ordering_n'"):
        TrainConfig.from_mapping({"best_metric": "seen.ordering_n"})


def test_single_task_depth_model_and_six_channels(tmp_path):
    cfg = tiny_config(tmp_path, model="lean_unet", task="depth", input_mode="bg_fg_bg", epochs=1,
                      model_kwargs={}, best_metric="unseen.abs_rel", depth_loss="densedepth")
    metrics = train(cfg)
    assert "iou" not in metrics["unseen"] and metrics["unseen"]["delta1"] >= 0
    ckpt = load_checkpoint(Path(cfg.out_dir) / "checkpoints" / "best.pt")
    assert ckpt["model_spec"]["in_channels"] == 6 and ckpt["info"]["input_mode"] == "bg_fg_bg"


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, monkeypatch):
    import maskdepth.evaluation.losses as losses

    real = losses.build_loss

    def poisoned(**kwargs):
        crit = real(**kwargs)
        calls = {"n": 0}
        forward = crit.forward

        def wrapped(pred, target):
            out = forward(pred, target)
            if torch.is_grad_enabled():  # training steps only (validation runs under no_grad)
                calls["n"] += 1
                if calls["n"] > 3:  # epoch 1 has 3 steps: epoch 2 diverges
                    out = {**out, "loss": out["loss"] * float("nan")}
            return out

        crit.forward = wrapped
        return crit

    monkeypatch.setattr(losses, "build_loss", poisoned)
    cfg = tiny_config(tmp_path, epochs=3)
    last = Path(cfg.out_dir) / "checkpoints" / "last.pt"
    with pytest.raises(TrainingDiverged, match="non-finite loss.*epoch 2") as info:
        train(cfg)
    assert f"{last} holds the last good state (epoch 1)" in str(info.value)
    ckpt = load_checkpoint(last)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_nan_validation_or_weights_never_become_a_checkpoint(tmp_path, monkeypatch, capsys):
    """Issue 16 case 4: an epoch whose validation loss (or weights) is NaN is not saved, and the
    message names no checkpoint that does not exist; predict refuses a NaN checkpoint."""
    import maskdepth.training.trainer as T
    from maskdepth.cli import main

    real_evaluate = T.evaluate

    def nan_validation(*args, **kwargs):
        return {**real_evaluate(*args, **kwargs), "loss": float("nan")}

    monkeypatch.setattr(T, "evaluate", nan_validation)
    cfg = tiny_config(tmp_path, epochs=2)
    with pytest.raises(TrainingDiverged, match="non-finite seen loss.*epoch 1") as info:
        train(cfg)
    assert "last.pt" not in str(info.value) and "No checkpoint was written" in str(info.value)
    assert not (Path(cfg.out_dir) / "checkpoints").exists()
    monkeypatch.setattr(T, "evaluate", real_evaluate)

    # weights that overflow to inf during the epoch: caught before saving, even with finite losses
    from maskdepth.training.optim import Schedule

    real_step = Schedule.after_epoch

    def poison_weights(self, val_loss):
        real_step(self, val_loss)
        with torch.no_grad():
            next(iter(self.sched.optimizer.param_groups[0]["params"])).fill_(float("inf"))

    monkeypatch.setattr(Schedule, "after_epoch", poison_weights)
    cfg = tiny_config(tmp_path / "w", epochs=2)
    with pytest.raises(TrainingDiverged, match="weights hold NaN or infinite values after epoch 1"):
        train(cfg)
    assert not (Path(cfg.out_dir) / "checkpoints" / "last.pt").exists()

    # a checkpoint holding NaN weights (written by hand) is refused by predict in one line
    from maskdepth.models import create_model

    model = create_model("joint", encoder="lean", context=False, base_channels=8)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(MaskdepthError, match="not written: the weights hold NaN"):
        save_checkpoint(tmp_path / "nan.pt", model, info={"input_size": [32, 32]})
    ckpt = {"format": "maskdepth-checkpoint/1", "model_spec": model.maskdepth_spec, "state_dict": model.state_dict(),
            "info": {"task": "joint", "input_mode": "fg_bg", "input_size": [32, 32]}}
    torch.save(ckpt, tmp_path / "nan.pt")
    from PIL import Image

    Image.new("RGB", (40, 40)).save(tmp_path / "x.png")
    capsys.readouterr()
    assert main(["predict", "-c", str(tmp_path / "nan.pt"), str(tmp_path / "x.png"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nan.pt: the weights hold NaN or infinite values" in err
    assert not (tmp_path / "o").exists()


# -- exact resume after SIGKILL ----------------------------------------------------------------
RUNNER = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    import maskdepth.training.trainer as T
    from maskdepth.training.optim import Schedule
    cfg = T.TrainConfig.from_mapping(json.loads(sys.argv[1]))
    kill_at = int(sys.argv[2])
    if kill_at:
        real_after_step = Schedule.after_step
        def after_step(self):
            real_after_step(self)
            if self._steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        Schedule.after_step = after_step
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



def _weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")["state_dict"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_loader_workers_are_deterministic_per_seed_and_resume_bit_exactly(tmp_path):
    """`workers 2` (the full stage loads with 8): the samples and their flips are made in worker
    processes, which persist across epochs. The same seed gives the same weights twice (and the
    same as with no workers), another seed others, and a run killed mid-epoch and resumed (fresh
    workers) ends with the uninterrupted run's weights, bit for bit."""
    base = {**TINY, "epochs": 3, "augment": True, "workers": 2}
    for name, seed, workers in (("a", 0, 2), ("b", 0, 2), ("other", 1, 2), ("none", 0, 0)):
        done = _run_training({**base, "seed": seed, "workers": workers, "out_dir": str(tmp_path / name)})
        assert done.returncode == 0, done.stderr
    a = _weights(tmp_path / "a")
    assert _same_weights(a, _weights(tmp_path / "b")) and _same_weights(a, _weights(tmp_path / "none"))
    assert not _same_weights(a, _weights(tmp_path / "other"))
    killed = _run_training({**base, "out_dir": str(tmp_path / "cut")}, kill_at=8)  # mid epoch 3 (3 steps/epoch)
    assert killed.returncode == -9, killed.stderr
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["epoch"] == 2
    resumed = _run_training({**base, "out_dir": str(tmp_path / "cut"), "resume": True})
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["epoch"] == 3
    assert _same_weights(a, _weights(tmp_path / "cut"))


KILL_BEFORE_BEST = textwrap.dedent(
    """
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    import maskdepth.training.checkpoints as C
    import maskdepth.training.trainer as T
    C._is_better = lambda value, best, metric: True  # every epoch is a new best: best.pt follows last.pt
    cfg = T.TrainConfig.from_mapping(json.loads(sys.argv[1]))
    kill_at, calls, real_copy = int(sys.argv[2]), [0], C.copy_file
    def copy_file(src, dst):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # this epoch's last.pt is written, best.pt not yet
        real_copy(src, dst)
    C.copy_file = copy_file
    T.train(cfg)
    """
)


def test_kill_between_last_and_best_is_repaired_by_resume(tmp_path):
    """Issue 16 case 5: a kill after last.pt, before best.pt and history.json, left best.pt one
    epoch behind, a permanent gap in history.json and metrics.json mixing two epochs."""
    params = {**TINY, "epochs": 3, "out_dir": str(tmp_path / "run")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(extra: dict, kill_at: int):
        return subprocess.run([sys.executable, "-c", KILL_BEFORE_BEST, json.dumps({**params, **extra}), str(kill_at)],
                              capture_output=True, text=True, env=env, timeout=300)

    killed = run({}, kill_at=2)  # in epoch 2, between last.pt and best.pt
    assert killed.returncode == -9, killed.stderr
    ckpts = tmp_path / "run" / "checkpoints"
    assert load_checkpoint(ckpts / "last.pt")["epoch"] == 2 and load_checkpoint(ckpts / "best.pt")["epoch"] == 1
    resumed = run({"resume": True}, kill_at=0)
    assert resumed.returncode == 0, resumed.stderr
    assert "repaired" in resumed.stdout
    history = json.loads((tmp_path / "run" / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 3 and metrics["seen"] == history[2]["seen"]
    assert load_checkpoint(ckpts / "best.pt")["epoch"] == load_checkpoint(ckpts / "last.pt")["epoch"] == 3


def test_a_fresh_run_refuses_any_earlier_run_and_resume_needs_the_same_model(tmp_path, capsys):
    """Issue 16 cases 6, 8 and 10: the folder guard looks at every run file, says --resume, and
    resuming with another model is a one-line error."""
    from maskdepth.cli import main

    cfg = tiny_config(tmp_path, epochs=1)
    train(cfg)
    run = Path(cfg.out_dir)
    capsys.readouterr()
    argv = ["train", "--data", "playground", "--size", "32", "--epochs", "1", "--out-dir", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a run" in err and "pass --resume" in err

    with pytest.raises(MaskdepthError, match=r"resume: .*last.pt was trained with model_kwargs=\{.*'base_channels': 8\}"):
        train(tiny_config(tmp_path, epochs=2, resume=True, model_kwargs={"encoder": "lean", "context": False, "base_channels": 16}))
    assert main([*argv, "--resume", "--model-kwargs", '{"encoder": "lean", "context": False, "base_channels": 16}']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was trained with" in err

    best = (run / "checkpoints" / "best.pt").read_bytes()
    history = (run / "history.json").read_text()
    (run / "checkpoints" / "last.pt").unlink()
    with pytest.raises(MaskdepthError, match=r"already holds a run \(checkpoints/best.pt, history.json, metrics.json\)"):
        train(tiny_config(tmp_path, epochs=1))
    assert (run / "checkpoints" / "best.pt").read_bytes() == best and (run / "history.json").read_text() == history


def test_a_run_with_the_object_term_trains_on_it_and_logs_it(tmp_path):
    """object_weight reaches the criterion: the log carries the object term, in the training
    loss and in each split's validation loss, and a negative weight is refused up front."""
    train(tiny_config(tmp_path, epochs=1, object_weight=2.0))
    record = json.loads((tmp_path / "run" / "history.json").read_text())["epochs"][0]
    for part in ("train", "seen", "ood"):
        assert record[part]["object"] > 0, part
    seen = record["seen"]
    assert seen["loss"] == pytest.approx(seen["mask"] + seen["depth"], rel=1e-5)
    train(tiny_config(tmp_path, epochs=1, out_dir=str(tmp_path / "plain")))  # off unless asked for
    plain = json.loads((tmp_path / "plain" / "history.json").read_text())["epochs"][0]
    assert "object" not in plain["train"] and "object" not in plain["seen"]
    with pytest.raises(MaskdepthError, match="object_weight=-1.0: must be >= 0"):
        TrainConfig.from_mapping({"object_weight": -1.0})


def test_parameters_are_strictly_typed_and_ranged_before_anything_runs(tmp_path, capsys):
    """Issue 16 cases 8 and 10: `-p epochs true` is no number, `-p lr -1` and `--device tpu` are
    refused by the config itself (and so before any notebook or dataset is touched)."""
    from maskdepth.cli import main
    from maskdepth.core.params import coerce

    for values, message in (({"epochs": True}, "epochs=True: expected a finite int"),
                            ({"lr": -1.0}, "lr=-1.0: must be a positive number"),
                            ({"lr": float("nan")}, "lr=nan"),
                            ({"augment": "no"}, "augment='no': expected true or false"),
                            ({"weight_decay": -1e-4}, "weight_decay=-0.0001: must be >= 0"),
                            ({"device": "tpu"}, "--device 'tpu': not a device this tool runs on"),
                            ({"amp": "True"}, "amp='True': choose one of auto, on, off"),
                            ({"amp": False}, "amp=False: choose one of auto, on, off")):
        with pytest.raises(MaskdepthError, match=message.replace("(", r"\(").replace(".", r"\.")):
            TrainConfig.from_mapping(values)
    with pytest.raises(MaskdepthError, match="epochs=True: expected int"):
        coerce("epochs", True, 10)
    with pytest.raises(MaskdepthError, match="amp=True: expected str"):
        coerce("amp", True, "auto")  # YAML's `amp: on` unquoted
    for argv in (["--epochs", "true"], ["--lr", "-1"], ["--device", "tpu"]):
        capsys.readouterr()
        assert main(["train", *argv, "--out-dir", str(tmp_path / "never")]) == 2, argv
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    for name, value in (("epochs", "true"), ("lr", "-1"), ("amp", "True")):
        assert main(["run", "--stage", "playground", "-p", name, value, "--outputs", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{name}=" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "never").exists()


# -- DDP ---------------------------------------------------------------------------------------
DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    from maskdepth.training.config import TrainConfig
    from maskdepth.training.trainer import Trainer
    cfg = TrainConfig.from_mapping(json.loads(sys.argv[1]))
    trainer = Trainer(cfg)
    trainer.fit()
    rank = dist.get_rank()
    torch.save(trainer.model.state_dict(), os.path.join(sys.argv[2], f"rank{rank}.pt"))
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
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
               "--no-tensorboard", "--no-progress-bar", "--model-kwargs", '{"encoder": "lean", "context": false, "base_channels": 8}',
               "--out-dir", str(tmp_path / "cli")])
    assert rc == 0
    cfg = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert cfg["epochs"] == 1 and cfg["batch_size"] == 8 and cfg["model_kwargs"] == {"encoder": "lean", "context": False, "base_channels": 8}
    with pytest.raises(SystemExit) as refused:  # an enumerated option: argparse's choices refuse it
        main(["train", "--optimizer", "nope", "--out-dir", str(tmp_path / "bad")])
    assert refused.value.code == 2 and not (tmp_path / "bad").exists()


# -- resume with the run's own settings; extending the schedule (issue 17) ------------------------
def test_schedule_extension_follows_the_longer_onecycle_from_the_step_reached():
    """Resuming a 2-epoch onecycle run with 3 epochs crashed ("Tried to step 7 times. The specified
    number of total steps is 6"): the schedule is rebuilt for the new total and continues with the
    lr the 3-epoch schedule has at the step reached."""
    from maskdepth.training.optim import Schedule

    def make(epochs: int):
        cfg = TrainConfig.from_mapping({**TINY, "epochs": epochs})
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=cfg.lr)
        return cfg, opt, Schedule(cfg, opt, steps_per_epoch=3)

    short_cfg, short_opt, short = make(2)
    for _ in range(6):
        short_opt.step()
        short.after_step()
    state = short.state_dict()
    _, long_opt, long = make(3)
    _, ref_opt, ref = make(3)
    long_opt.load_state_dict(short_opt.state_dict())
    long.load_state_dict(state)
    (note,) = long.continue_with(short_cfg.to_dict())
    assert "rebuilt for 9 steps (was 6" in note
    for _ in range(6):
        ref_opt.step()
        ref.after_step()
    for _ in range(3):
        assert long_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"])
        assert long_opt.param_groups[0]["betas"] == pytest.approx(ref_opt.param_groups[0]["betas"])
        for opt, sched in ((long_opt, long), (ref_opt, ref)):
            opt.step()
            sched.after_step()
    assert long_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"])


def test_extending_a_run_with_resume_and_the_run_keeps_its_settings(tmp_path, capsys):
    """`--epochs 2`, then `--epochs 3 --resume`: no crash, the other settings (lr, batch size, size,
    model, data) stay the run's own, config.json says 3 epochs, and the change is reported; a
    resume never switches the data."""
    from maskdepth.cli import main

    run = tmp_path / "run"
    argv = ["train", "--data", "playground", "--epochs", "2", "--size", "32", "--batch-size", "8", "--lr", "0.002",
            "--no-tensorboard", "--no-progress-bar", "--model-kwargs", '{"encoder": "lean", "context": false, "base_channels": 8}', "--out", str(run)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["train", "--epochs", "3", "--resume", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "resume: settings changed since the checkpoint: epochs 2 -> 3" in out
    assert "onecycle schedule rebuilt for 9 steps (was 6" in out
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 3 and ckpt["step"] == 9
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["epochs"], cfg["lr"], cfg["batch_size"], cfg["size"], cfg["data"]) == (3, 0.002, 8, 32, "playground")
    assert cfg["model_kwargs"] == {"encoder": "lean", "context": False, "base_channels": 8} and not cfg["tensorboard"]
    assert [e["epoch"] for e in json.loads((run / "history.json").read_text())["epochs"]] == [1, 2, 3]
    assert "resume:" in (run / "train.log").read_text()  # the console lines are kept in the run folder too

    assert main(["train", "--resume", "--out", str(run), "--data", "1k"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "never switches data" in err
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "holds no run to continue" in capsys.readouterr().err


def test_resume_without_flags_continues_with_the_runs_settings_to_the_same_weights(tmp_path):
    """A run with non-default settings killed mid-way, resumed by `maskdepth train --resume --out RUN`
    alone, ends with the weights of the uninterrupted run (the defaults would give others)."""
    base = {**TINY, "epochs": 3, "lr": 2e-3, "batch_size": 12, "augment": False}
    ref = _run_training({**base, "out_dir": str(tmp_path / "ref")})
    assert ref.returncode == 0, ref.stderr
    killed = _run_training({**base, "out_dir": str(tmp_path / "cut")}, kill_at=3)  # in epoch 2 (2 steps/epoch)
    assert killed.returncode == -9, killed.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    resumed = subprocess.run([sys.executable, "-m", "maskdepth", "train", "--resume", "--out", str(tmp_path / "cut")],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "settings changed" not in resumed.stdout and "resumed from" in resumed.stdout
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["step"] == b["step"] == 6
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
