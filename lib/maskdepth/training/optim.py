"""Optimisation: the optimizer a config names, and the learning-rate `Schedule` the loop steps
(OneCycle per optimizer step, the others per epoch), with what a resume needs to follow a
changed length or peak lr (`Schedule.continue_with`).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from maskdepth.training.config import TrainConfig


def param_groups(cfg: TrainConfig, model: torch.nn.Module, extra=()) -> list[dict]:
    """The optimizer's parameter groups, each with its `lr_scale` (its lr is lr * lr_scale): one
    group, or with `encoder_lr` != 1 the model's `encoder` in a second group at that fraction."""
    encoder = getattr(model, "encoder", None)
    if cfg.encoder_lr == 1.0 or encoder is None:
        return [{"params": [*model.parameters(), *extra], "lr_scale": 1.0}]
    mine = {id(p) for p in encoder.parameters()}
    rest = [p for p in model.parameters() if id(p) not in mine]
    return [{"params": [*rest, *extra], "lr_scale": 1.0},
            {"params": list(encoder.parameters()), "lr_scale": cfg.encoder_lr, "lr": cfg.lr * cfg.encoder_lr}]


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Schedule:
    """Wraps the torch schedulers so the loop steps each one at the right time:
    OneCycle per optimizer step, the others per epoch (plateau with the validation loss)."""

    def __init__(self, cfg: TrainConfig, optimizer, steps_per_epoch: int):
        self.kind = cfg.schedule
        self.cfg, self.optimizer, self.steps_per_epoch = cfg, optimizer, steps_per_epoch
        self.sched = self._make()
        self._steps = 0
        self._total = getattr(self.sched, "total_steps", None)

    def _make(self):
        from torch.optim import lr_scheduler as ls

        cfg, optimizer = self.cfg, self.optimizer
        if self.kind == "constant":
            return ls.LambdaLR(optimizer, lambda _: 1.0)
        if self.kind == "step":
            return ls.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
        if self.kind == "constant_then_step":
            n0, step, gamma = cfg.constant_epochs, cfg.step_size, cfg.gamma
            return ls.LambdaLR(optimizer, lambda e: 1.0 if e < n0 else gamma ** ((e - n0) // step + 1))
        if self.kind == "plateau":
            return ls.ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=max(1, cfg.step_size // 2))
        total = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        max_lr = [cfg.lr * group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        return ls.OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(total, 2), pct_start=0.25)

    def after_step(self) -> None:
        if self.kind == "onecycle" and self._steps < self._total - 1:
            self.sched.step()
        self._steps += 1

    def after_epoch(self, val_loss: float | None) -> None:
        if self.kind == "plateau":
            if val_loss is not None and math.isfinite(val_loss):
                self.sched.step(val_loss)
        elif self.kind != "onecycle":
            self.sched.step()

    def state_dict(self) -> dict:
        return {"sched": self.sched.state_dict(), "steps": self._steps}

    def load_state_dict(self, state: dict) -> None:
        self.sched.load_state_dict(state["sched"])
        self._steps = state["steps"]

    def continue_with(self, saved: dict) -> list[str]:
        """After `load_state_dict` on a resume: follow this run's settings where they differ from
        `saved` (the checkpoint's config). OneCycle with another length (--epochs, --max-steps,
        batch size) or peak lr is rebuilt for the new total and continues at the step reached,
        with the lr the new schedule has there; the other schedules keep their state, their lr
        curve scaled by new lr / old lr and step_size / gamma from this run. Returns notes."""
        cfg, groups = self.cfg, self.optimizer.param_groups
        old_lr = float(saved.get("lr", cfg.lr))
        if self.kind == "onecycle":
            old_total = self.sched.total_steps
            if old_total == self._total and old_lr == cfg.lr:
                return []
            self.sched = self._make()  # the new length and peak lr; then go to the step reached
            reached = min(self._steps, self._total - 1)
            self.sched.last_epoch = reached - 1
            with warnings.catch_warnings():  # "step() before optimizer.step()": here on purpose
                warnings.filterwarnings("ignore", message=".*lr_scheduler.step", category=UserWarning)
                self.sched.step()
            return [f"onecycle schedule rebuilt for {self._total} steps (was {old_total}, peak lr {cfg.lr:g}); "
                    f"it continues at step {self._steps} with lr {groups[0]['lr']:.3g}"]
        notes = []
        if old_lr != cfg.lr:
            ratio = cfg.lr / old_lr
            for group in groups:
                group["lr"] *= ratio
                if "initial_lr" in group:
                    group["initial_lr"] *= ratio
            if hasattr(self.sched, "base_lrs"):
                self.sched.base_lrs = [lr * ratio for lr in self.sched.base_lrs]
            if hasattr(self.sched, "_last_lr"):
                self.sched._last_lr = [group["lr"] for group in groups]
            notes.append(f"lr schedule scaled by {ratio:g} (lr {old_lr:g} -> {cfg.lr:g}); lr now {groups[0]['lr']:.3g}")
        if self.kind == "step":
            self.sched.step_size, self.sched.gamma = cfg.step_size, cfg.gamma
        elif self.kind == "plateau":
            self.sched.factor, self.sched.patience = cfg.gamma, max(1, cfg.step_size // 2)
        return notes
