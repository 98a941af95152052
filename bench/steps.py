"""Training steps the figures time: our product loop (`Trainer`), and a bare step on a fixed batch.

`ProductTrainer` drives `maskdepth.train.Trainer.train_one_epoch` a few optimizer steps at a
time, so "ours" in figure 1 is exactly the loop users run (our Dataset and DataLoader,
augmentation, loss, AdamW, OneCycle), not a bench-only copy. `StepRig` is one model with its
loss and optimizer stepping on a batch already in memory: the model's cost alone (figures
2, 3 and 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from maskdepth.data import model_input

# (model name, task) of the networks the figures compare.
JOINT = ("joint", "joint")
LEAN = ("lean_unet", "mask")
RESNET = ("resnet_unet", "mask")


def tasks_of(task: str) -> tuple[str, ...]:
    return ("mask", "depth") if task == "joint" else (task,)


class ProductTrainer:
    """Our training loop on the 1k stage, stepped `n` optimizer steps at a time."""

    def __init__(self, model: str, task: str, *, batch_size: int, out_dir: Path, data: str = "1k",
                 device: str = "cpu", seed: int = 0):
        from maskdepth.train import TrainConfig, Trainer

        cfg = TrainConfig(data=data, out_dir=str(out_dir), model=model, task=task, batch_size=batch_size,
                          device=device, seed=seed, workers=0, tensorboard=False, progress_bar=False)
        self.trainer = Trainer(cfg)  # writes nothing until fit(), which we never call

    def run_steps(self, n: int) -> int:
        """Train `n` more steps (fewer if the epoch ends first); returns the samples trained on."""
        trainer = self.trainer
        trainer.cfg.max_steps = trainer.step + n
        return int(trainer.train_one_epoch()["samples"])


@dataclass
class StepRig:
    """A model with its training loss and optimizer, built the way `maskdepth.train` builds them."""

    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    in_channels: int
    device: torch.device
    autocast_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    def step(self, batch: dict) -> int:
        """One optimizer step on `batch` (already on the device); returns the batch size."""
        x = model_input(batch, self.in_channels)
        if self.autocast_dtype is None:
            pred = self.model(x)
        else:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                pred = self.model(x)
        pred = {k: v.float() for k, v in pred.items()}
        loss = self.criterion(pred, batch)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return int(x.shape[0])


def make_rig(model: str, task: str, *, device: str = "cpu", channels_last: bool = False,
             autocast_dtype: torch.dtype | None = None, lr: float = 3e-3, seed: int = 0) -> StepRig:
    """Model, loss (the training defaults) and AdamW, as `maskdepth.train.Trainer` makes them."""
    from maskdepth.losses import build_loss
    from maskdepth.train import TrainConfig, build_model, build_optimizer

    torch.manual_seed(seed)
    cfg = TrainConfig(model=model, task=task, lr=lr, device=device, channels_last=channels_last)
    dev = torch.device(device)
    net = build_model(cfg).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    criterion = build_loss(task=task, mask_loss=cfg.mask_loss, depth_loss=cfg.depth_loss,
                           weights={"mask": cfg.mask_weight, "depth": cfg.depth_weight}).to(dev)
    optimizer = build_optimizer(cfg, list(net.parameters()) + list(criterion.parameters()))
    scaler = None
    if dev.type == "cuda" and autocast_dtype == torch.float16:
        scaler = torch.amp.GradScaler("cuda")
    return StepRig(net, criterion, optimizer, cfg.in_channels, dev, autocast_dtype, scaler)


def fixed_batch(dataset, batch_size: int, *, device: str | torch.device = "cpu",
                channels_last: bool = False) -> dict:
    """The first `batch_size` samples of `dataset`, collated and moved to `device`."""
    from torch.utils.data import default_collate

    batch = default_collate([dataset[i % len(dataset)] for i in range(batch_size)])
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.is_floating_point():
            value = value.to(device)
            if channels_last and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def batches_forever(loader) -> Iterator[dict]:
    """Batches of `loader`, starting a new epoch whenever one ends."""
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("the loader yields no batch (dataset smaller than the batch with drop_last?)")


def consume(batches: Iterator[dict], n_batches: int) -> int:
    """Pull `n_batches` batches; returns the samples they held (the loader's cost alone)."""
    samples = 0
    for _ in range(n_batches):
        samples += int(next(batches)["image"].shape[0])
    return samples
