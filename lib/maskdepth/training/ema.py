"""An exponential moving average of the weights: the model that is evaluated and saved when `ema > 0`.

Why: on small data the weights after the last step depend on the last few batches; their
average over the recent steps is the usual remedy (timm's ModelEma, Polyak averaging). The
average covers every floating-point entry of the state dict, BatchNorm running statistics
included, so the averaged model is evaluated as it is; integer entries (batch counters) are
copied. The decay ramps up as (1 + t) / (10 + t) until it reaches `decay`, so the average
follows the weights closely in the first steps instead of remembering the random init.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay!r}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards `model`'s current state (call after each optimizer step)."""
        self.updates += 1
        d = self.current_decay()
        avg, now = [], []
        for mine, theirs in zip(self.module.state_dict().values(), model.state_dict().values()):
            if mine.is_floating_point():
                avg.append(mine)
                now.append(theirs.detach())
            else:
                mine.copy_(theirs)
        torch._foreach_lerp_(avg, now, 1.0 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict, weights: dict) -> None:
        """Restore the average: its counters (`state`) and its weights (the checkpoint's state_dict)."""
        self.updates = int(state["updates"])
        self.module.load_state_dict(weights)
