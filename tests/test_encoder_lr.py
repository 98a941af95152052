"""encoder_lr: the encoder trains at a fraction of lr, through every step of the schedule."""

from __future__ import annotations

import pytest
import torch

from maskdepth.core.errors import MaskdepthError
from maskdepth.models import create_model
from maskdepth.training.config import TrainConfig
from maskdepth.training.optim import Schedule, build_optimizer, param_groups


def _setup(encoder_lr, schedule="onecycle"):
    cfg = TrainConfig(encoder_lr=encoder_lr, lr=0.01, schedule=schedule, epochs=3)
    model = create_model("joint", encoder="lean", context=False, base_channels=8)
    extra = [torch.nn.Parameter(torch.zeros(2))]  # e.g. the loss's learned task weights
    optimizer = build_optimizer(cfg, param_groups(cfg, model, extra))
    return cfg, model, extra, optimizer, Schedule(cfg, optimizer, steps_per_epoch=4)


@pytest.mark.parametrize("schedule", ["onecycle", "step", "constant"])
def test_encoder_group_runs_at_its_fraction_of_lr_all_along(schedule):
    _, model, extra, optimizer, sched = _setup(0.25, schedule)
    rest, enc = optimizer.param_groups
    assert {id(p) for p in enc["params"]} == {id(p) for p in model.encoder.parameters()}
    everything = {id(p) for p in model.parameters()} | {id(extra[0])}
    assert {id(p) for p in rest["params"]} | {id(p) for p in enc["params"]} == everything
    for _ in range(10):
        optimizer.step()
        sched.after_step()
        assert enc["lr"] == pytest.approx(0.25 * rest["lr"])
    sched.after_epoch(None)
    assert enc["lr"] == pytest.approx(0.25 * rest["lr"])


def test_one_group_when_encoder_lr_is_one():
    _, model, extra, optimizer, _ = _setup(1.0)
    (group,) = optimizer.param_groups
    assert len(group["params"]) == len(list(model.parameters())) + 1


def test_encoder_lr_must_be_a_non_negative_number():
    with pytest.raises(MaskdepthError, match="encoder_lr"):
        TrainConfig.from_mapping({"encoder_lr": -0.1})
