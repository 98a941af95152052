"""The parts of one training run, built in the order the random streams depend on: the datasets,
the model, its precision (float32 or bf16 on a CPU, timed once), the loss, the optimizer, the
weights' moving average, the loaders, the schedule and the gradient scaler.

`RunParts` is one of the classes `maskdepth.training.trainer.Trainer` is made of.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.training.builders import build_model, build_val_sets, check_memory, make_loader
from maskdepth.training.distributed import broadcast_object, wrap_ddp
from maskdepth.training.ema import WeightEMA
from maskdepth.training.optim import Schedule, build_optimizer, param_groups
from maskdepth.training.precision import PrecisionChoice, choose_cpu_precision
from maskdepth.training.rng import seed_everything


class RunParts:
    """Builds and holds a run's parts (`Trainer` sets cfg, dev, world, rank and is_main first)."""

    def _build_parts(self) -> None:
        from maskdepth.datasets.dataset import build_dataset
        from maskdepth.evaluation.losses import build_loss

        cfg = self.cfg
        seed_everything(cfg.seed)
        self.train_set = build_dataset(cfg.data, "train", size=cfg.size, seed=cfg.seed, augment=cfg.augment)
        # Every validation split with samples; an empty one (e.g. no ood in an imported folder) is skipped.
        self.val_sets, self.val_counts = build_val_sets(cfg.data, cfg.size, cfg.seed)
        best_split = cfg.best_metric.partition(".")[0]
        if best_split not in self.val_sets:
            raise MaskdepthError(f"best_metric={cfg.best_metric!r}: {cfg.data} has no {best_split} samples")
        check_memory(cfg)
        self.model = build_model(cfg).to(self.dev.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision = self._initial_precision()
        self.net = wrap_ddp(self.model, self.dev.device, self.world)  # what we call forward on
        self.criterion = build_loss(
            task=cfg.task,
            mask_loss=cfg.mask_loss,
            depth_loss=cfg.depth_loss,
            weights={"mask": cfg.mask_weight, "depth": cfg.depth_weight},
            uncertainty=cfg.uncertainty,
            object_weight=cfg.object_weight,
        ).to(self.dev.device)
        self.optimizer = build_optimizer(cfg, param_groups(cfg, self.model, self.criterion.parameters()))
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema else None
        self.shuffle_generator = torch.Generator()
        self.train_loader = make_loader(
            self.train_set, cfg, train=True, pin_memory=self.dev.pin_memory, world=self.world, rank=self.rank,
            generator=self.shuffle_generator,
        )
        self.val_loaders = {
            s: make_loader(ds, cfg, train=False, pin_memory=self.dev.pin_memory) for s, ds in self.val_sets.items()
        }
        self.schedule = Schedule(cfg, self.optimizer, len(self.train_loader))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dev.grad_scaler and self.dev.device.type == "cuda")
        self.epoch = 0  # finished epochs
        self.step = 0
        self.saved_epoch: int | None = None  # the epoch checkpoints/last.pt holds (None: not written)
        self.history: list[dict] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.train_time_s = 0.0

    @property
    def eval_model(self) -> nn.Module:
        """What is evaluated, saved and predicted with: the weights' moving average when `ema` is on."""
        return self.model if self.ema is None else self.ema.module

    # -- precision -------------------------------------------------------------------------------
    def _initial_precision(self) -> PrecisionChoice:
        """What the run trains in. `amp=auto` on a CPU times bf16 against float32 (rank 0, the
        others take its answer); a resumed run takes its checkpoint's choice instead (`load_for_resume`)."""
        cfg = self.cfg
        if str(cfg.amp) != "auto" or self.dev.device.type != "cpu":
            kind = self.dev.amp_name if self.dev.device.type in ("cuda", "cpu") else "off"
            return PrecisionChoice(kind, f"amp={cfg.amp} on {self.dev.device.type}")
        if cfg.resume:
            return PrecisionChoice("off", "amp=auto: the checkpoint's choice (resume)")
        return self._timed_precision()

    def _timed_precision(self) -> PrecisionChoice:
        cfg = self.cfg
        choice = None
        if self.is_main:
            choice = choose_cpu_precision(self.model, cfg.in_channels, cfg.size, cfg.batch_size,
                                          channels_last=cfg.channels_last)
        choice = broadcast_object(choice, self.world)
        self._use_precision(choice)
        return choice

    def _use_precision(self, choice: PrecisionChoice) -> None:
        self.precision = choice
        self.dev = dataclasses.replace(self.dev, amp=choice.enabled)

