"""Training steps the figures time: our product loop (`Trainer`), and a bare step on a fixed batch.

`ProductTrainer` drives `maskdepth.training.trainer.Trainer.train_one_epoch` a few optimizer steps at a
time, so "ours" in figure 1 is exactly the loop users run (our Dataset and DataLoader,
augmentation, loss, AdamW, OneCycle), not a bench-only copy. `StepRig` is one model with its
loss and optimizer stepping on a batch already in memory: the model's cost alone (figures
2, 3 and 6).

"The default" is what `maskdepth run --stage 1k` trains: the stage's model (`joint` with
`TrainConfig`'s default `model_kwargs`), channels_last and, on a CPU, bf16 autocast only where it
times clearly faster than float32 (`maskdepth.training.precision`, the trainer's own choice),
float16 autocast on CUDA (`default_config`, `default_precision`, `default_rig`). `trainer_augment` is the trainer's batch augmentation
(zoom, then photometric) exactly as `Trainer.train_one_epoch` applies it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from maskdepth.datasets.dataset import model_input

# (model name, task) of the networks the figures compare.
JOINT = ("joint", "joint")  # with the library's default kwargs (the stride-8 joint U-Net)
LEAN = ("lean_unet", "mask")
RESNET = ("resnet_unet", "mask")


def tasks_of(task: str) -> tuple[str, ...]:
    return ("mask", "depth") if task == "joint" else (task,)


def default_config(stage: str = "1k", **overrides):
    """The TrainConfig `maskdepth run --stage STAGE` trains with (the stage's training defaults)."""
    import dataclasses

    from maskdepth.plan.stages import get_stage
    from maskdepth.training.config import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in get_stage(stage).train_defaults.items() if k in names}
    return TrainConfig.from_mapping({"data": stage, **values, **overrides})


@functools.cache
def default_precision(device: str = "cpu", stage: str = "1k") -> torch.dtype | None:
    """The autocast dtype the trainer uses on `device` by default (None: float32): float16 on
    CUDA; on a CPU the trainer's timed choice for the stage's model (`maskdepth.training.precision`,
    remembered per machine, so the figures and the trainer agree)."""
    from maskdepth.training.precision import choose_cpu_precision

    if device.startswith("cuda"):
        return torch.float16
    cfg = default_config(stage)
    model = _stage_model(cfg)
    choice = choose_cpu_precision(model, cfg.in_channels, cfg.size, cfg.batch_size, channels_last=cfg.channels_last)
    return torch.bfloat16 if choice.enabled else None


def _stage_model(cfg) -> nn.Module:
    from maskdepth.training.builders import build_model

    model = build_model(cfg)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def describe_default(device: str = "cpu", stage: str = "1k") -> str:
    cfg = default_config(stage)
    dtype = default_precision(device, stage)
    kwargs = ", ".join(f"{k}={v}" for k, v in cfg.model_kwargs.items())
    return (f"{cfg.model}({kwargs}), {'channels_last' if cfg.channels_last else 'contiguous'}, "
            f"{'float32' if dtype is None else str(dtype).replace('torch.', '') + ' autocast'}")


def trainer_augment(batch: dict, cfg, epoch: int = 0) -> dict:
    """The trainer's batch augmentation after collation (`Trainer.train_one_epoch`): channels_last
    when the config asks, then zoom and photometric from (seed, epoch, index)."""
    from maskdepth.augment.photometric import augment_batch
    from maskdepth.augment.zoom import zoom_batch

    if cfg.channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last)
                 if torch.is_tensor(v) and v.dim() == 4 else v for k, v in batch.items()}
    if cfg.augment:
        batch = zoom_batch(batch, cfg.seed, epoch, cfg.zoom)
        batch = augment_batch(batch, cfg.seed, epoch, cfg.photometric)
    return batch


class ProductTrainer:
    """Our training loop on the 1k stage, stepped `n` optimizer steps at a time."""

    def __init__(self, model: str, task: str, *, batch_size: int, out_dir: Path, data: str = "1k",
                 device: str = "cpu", seed: int = 0, **extra):
        from maskdepth.training.config import TrainConfig

        cfg = TrainConfig(data=data, out_dir=str(out_dir), model=model, task=task, batch_size=batch_size,
                          device=device, seed=seed, workers=0, tensorboard=False, progress_bar=False, **extra)
        self._build(cfg)

    def _build(self, cfg) -> None:
        from maskdepth.training.trainer import Trainer

        self.trainer = Trainer(cfg)  # writes nothing until fit(), which we never call

    @classmethod
    def default(cls, *, out_dir: Path, stage: str = "1k", device: str = "cpu", **overrides) -> ProductTrainer:
        """The stage's default recipe (`default_config`: model, batch, lr, schedule, epochs) through
        the Trainer; `overrides` change single settings (e.g. data, size, batch_size)."""
        cfg = default_config(stage, out_dir=str(out_dir), device=device, workers=0, tensorboard=False,
                             progress_bar=False, **overrides)
        self = cls.__new__(cls)
        self._build(cfg)
        return self

    def run_steps(self, n: int) -> int:
        """Train `n` more steps (fewer if the epoch ends first); returns the samples trained on."""
        trainer = self.trainer
        trainer.cfg.max_steps = trainer.step + n
        return int(trainer.train_one_epoch()["samples"])


@dataclass
class StepRig:
    """A model with its training loss and optimizer, built the way `maskdepth.training.trainer` builds them."""

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
             autocast_dtype: torch.dtype | None = None, lr: float = 3e-3, seed: int = 0,
             model_kwargs: dict | None = None) -> StepRig:
    """Model, loss (the training defaults) and AdamW, as `maskdepth.training.trainer.Trainer` makes them."""
    from maskdepth.evaluation.losses import build_loss
    from maskdepth.training.builders import build_model
    from maskdepth.training.config import TrainConfig
    from maskdepth.training.optim import build_optimizer

    torch.manual_seed(seed)
    cfg = TrainConfig(model=model, task=task, lr=lr, device=device, channels_last=channels_last,
                      model_kwargs=dict(model_kwargs or {}))
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


def default_rig(*, device: str = "cpu", stage: str = "1k", autocast: str = "default",
                channels_last: bool | None = None, seed: int = 0) -> StepRig:
    """The stage's default model, loss and optimizer as the trainer runs them on `device`:
    channels_last (unless told) and the default autocast ("default"), or float32 ("off"), or
    bf16 ("bf16")."""
    cfg = default_config(stage)
    dtype = {"default": default_precision(device), "off": None, "bf16": torch.bfloat16}[autocast]
    if device.startswith("cuda") and autocast == "default":
        dtype = torch.float16
    return make_rig(cfg.model, cfg.task, device=device, lr=cfg.lr, seed=seed, model_kwargs=cfg.model_kwargs,
                    channels_last=cfg.channels_last if channels_last is None else channels_last,
                    autocast_dtype=dtype)


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


def warm(dataset) -> None:
    """Compose every sample once, so that timing sees the steady state of training (epoch >= 2:
    rendered objects in the composer's cache) rather than the first epoch's rendering."""
    compose = getattr(dataset, "compose", None)
    if compose is not None:
        for i in range(len(dataset)):
            compose(i)


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
