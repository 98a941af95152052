"""ema > 0: the weights' moving average is what is evaluated and saved, and a resume continues it exactly."""

from __future__ import annotations

import json

import pytest
import torch
from test_train import TINY, _run_training

from maskdepth.core.errors import MaskdepthError
from maskdepth.models.checkpoint import load_checkpoint
from maskdepth.training.config import TrainConfig
from maskdepth.training.ema import WeightEMA
from maskdepth.training.trainer import Trainer


def test_the_average_follows_the_ramped_decay_and_copies_counters():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = WeightEMA(net, decay=0.5)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net[1].num_batches_tracked.fill_(7)
    ema.update(net)  # decay min(0.5, 2/11) = 2/11
    d = 2 / 11
    torch.testing.assert_close(ema.module[0].weight, d * start + (1 - d) * (start + 1.0))
    assert int(ema.module[1].num_batches_tracked) == 7  # integers are copied, not averaged
    for _ in range(20):
        ema.update(net)
    assert ema.current_decay() == 0.5  # the ramp has reached the decay
    torch.testing.assert_close(ema.module[0].weight, start + 1.0, atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(net, decay=1.0)


def test_bad_ema_is_refused_by_name():
    with pytest.raises(MaskdepthError, match="ema=1.0"):
        TrainConfig.from_mapping({"ema": 1.0})
    with pytest.raises(MaskdepthError, match="ema=-0.1"):
        TrainConfig.from_mapping({"ema": -0.1})


def test_the_average_is_evaluated_and_saved_and_the_raw_weights_kept_for_resume(tmp_path):
    cfg = TrainConfig.from_mapping({**TINY, "epochs": 1, "ema": 0.9, "out_dir": str(tmp_path / "run")})
    trainer = Trainer(cfg)
    metrics = trainer.fit()
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    averaged, raw = trainer.ema.module.state_dict(), trainer.model.state_dict()
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw if raw[k].is_floating_point())
    for key, value in last["state_dict"].items():  # predictions use the average
        assert torch.equal(value, averaged[key]), key
    for key, value in last["train_state"]["weights"].items():  # a resume continues the raw weights
        assert torch.equal(value, raw[key]), key
    assert last["train_state"]["ema"]["updates"] == trainer.step == 3
    # the metrics are the average's: evaluating the raw weights gives other numbers
    from maskdepth.training.trainer import evaluate

    raw_seen = evaluate(trainer.model, trainer.val_loaders["seen"], trainer.criterion, cfg, trainer.dev)
    assert raw_seen["loss"] != pytest.approx(metrics["seen"]["loss"], rel=1e-6)


def test_resume_after_sigkill_continues_the_average_exactly(tmp_path):
    base = {**TINY, "epochs": 3, "augment": True, "ema": 0.9, "amp": "off"}
    ref = _run_training({**base, "out_dir": str(tmp_path / "ref")})
    assert ref.returncode == 0, ref.stderr
    killed = _run_training({**base, "out_dir": str(tmp_path / "cut")}, kill_at=8)  # mid epoch 3
    assert killed.returncode == -9, killed.stderr
    resumed = _run_training({**base, "out_dir": str(tmp_path / "cut"), "resume": True})
    assert resumed.returncode == 0, resumed.stderr
    a = load_checkpoint(tmp_path / "ref" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert a["train_state"]["ema"] == b["train_state"]["ema"]
    for part in ("state_dict",):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), key
    for key, value in a["train_state"]["weights"].items():
        assert torch.equal(value, b["train_state"]["weights"][key]), key
    hist = json.loads((tmp_path / "cut" / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in hist] == [1, 2, 3]
