"""Training: one loop for every model and task, on CPU, one GPU, or many with torchrun.

`train(TrainConfig(...))` builds the datasets, the model, the loss and the optimizer, then
runs epochs of: train → validate on every validation split that has samples (`seen`,
`unseen`, `ood`; see `maskdepth.stages`) → log (console line, TensorBoard, history.json) →
checkpoint (`last.pt` every epoch, `best.pt` on improvement of `best_metric`, by default
the `seen` loss; directions come from the catalogue in `maskdepth.metrics`).

Exact resume: every epoch starts by re-seeding all RNGs from (seed, epoch), and a
checkpoint is written only at epoch boundaries, so a run killed at any point and resumed
from `last.pt` repeats the interrupted epoch bit for bit (on CPU) and ends with the same
weights as an uninterrupted run.

Scale-out: launched by `torchrun --nproc_per_node=N -m maskdepth train ...`, each process
trains on its DistributedSampler shard under DistributedDataParallel; rank 0 alone
validates, logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maskdepth import runs
from maskdepth.checkpoint import load_checkpoint, load_weights, nonfinite_weights, save_checkpoint, unwrap
from maskdepth.device import resolve_device
from maskdepth.errors import MaskdepthError
from maskdepth.io import copy_file, write_json
from maskdepth.metrics import is_better, json_ready, parse_split_metric
from maskdepth.progress import progress
from maskdepth.stages import VAL_SPLITS

TASKS = ("mask", "depth", "joint")
INPUT_MODES = {"fg_bg": 3, "bg_fg_bg": 6}
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "constant_then_step", "plateau", "onecycle")
SINGLE_TASK_MODELS = ("lean_unet", "resnet_unet")


class TrainingDiverged(MaskdepthError):
    """The loss (training or validation) or the weights became NaN or infinite; no checkpoint
    is written from that state, so last.pt (when there is one) holds the last good epoch."""


# The run's console lines (also on stdout): `maskdepth run` echoes them while 02_train runs.
TRAIN_LOG = "train.log"
PROGRESS_LOG_EVERY_S = 60.0  # within an epoch, a progress line in train.log at most this often
# Files of a run: a fresh run refuses a folder that holds any of them (--resume continues it).
RUN_FILES = ("checkpoints/last.pt", "checkpoints/best.pt", "history.json", "metrics.json")
# Settings a resumed run must share with the checkpoint it continues (the states must fit).
RESUME_KEYS = ("model", "model_kwargs", "task", "input_mode", "optimizer", "schedule", "uncertainty")
# Lower bounds of numeric parameters (inclusive; lr must also be > 0, checked in validate).
MINIMUM = {"weight_decay": 0, "momentum": 0, "step_size": 1, "gamma": 0, "constant_epochs": 0, "mask_weight": 0,
           "depth_weight": 0, "grid_every": 0, "seed": 0, "workers": 0, "max_steps": 0, "photometric": 0, "zoom": 1}


def _check_types_and_ranges(cfg) -> None:
    """Strict types (true is no number of epochs, "no" is no boolean), finite numbers, known
    ranges, and a device name this tool runs on: errors name the parameter."""
    from maskdepth.device import check_device_name
    from maskdepth.params import field_defaults

    for name, default in field_defaults(type(cfg)).items():
        value = getattr(cfg, name)
        if isinstance(default, bool) and name != "amp":
            ok = isinstance(value, bool)
        elif isinstance(default, int) and not isinstance(default, bool):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            continue
        if not ok:
            kind = "true or false" if isinstance(default, bool) else f"a finite {type(default).__name__}"
            raise MaskdepthError(f"{name}={value!r}: expected {kind}")
        if name in MINIMUM and value < MINIMUM[name]:
            raise MaskdepthError(f"{name}={value!r}: must be >= {MINIMUM[name]}")
    check_device_name(cfg.device)


@dataclass
class TrainConfig:
    """Everything a run depends on. Field names are the papermill parameters and CLI flags."""

    data: str = "playground"  # stage name (playground | 1k | full) or a dataset folder
    out_dir: str = ""  # run folder; "" -> outputs/<stage>/<timestamp>-<hash>
    model: str = "joint"
    model_kwargs: dict = field(default_factory=dict)
    weights: str = ""  # local torchvision state_dict for the encoder; never downloaded
    task: str = "joint"  # mask | depth | joint (the seed trained one model per task)
    input_mode: str = "fg_bg"  # fg_bg (3 channels) | bg_fg_bg (6 channels)
    size: int = 64
    augment: bool = True  # random flips per sample and batched photometric augmentation (data/photometric.py)
    photometric: float = 1.0  # strength of the photometric augmentation when augment is on (0: off)
    zoom: float = 1.0  # largest zoom (crop + resize, depth kept in metres) when augment is on (1: off)
    mask_loss: str = "bce_dice"
    depth_loss: str = "l1"
    mask_weight: float = 1.0
    depth_weight: float = 1.0
    uncertainty: bool = False  # learned task weighting (Kendall et al. 2018)
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # SGD only
    schedule: str = "onecycle"
    step_size: int = 10  # step / constant_then_step: epochs between decays
    gamma: float = 0.1
    constant_epochs: int = 0  # constant_then_step: epochs at the initial lr before StepLR starts
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimizer steps in total (0: no limit)
    batch_size: int = 32
    workers: int = 0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (CUDA float16; CPU bf16 where the CPU has native bf16) | on | off
    channels_last: bool = True  # 1.36x faster training on CPU for the joint model (bench/ figure 3)
    val_batch_size: int = 64
    grid_every: int = 5  # epochs between TensorBoard image grids (0: never)
    # Checkpoint selection uses the `seen` split only; `unseen` and `ood` stay untouched test splits.
    best_metric: str = "seen.loss"
    resume: bool = False  # continue from out_dir/checkpoints/last.pt
    tensorboard: bool = True
    progress_bar: bool = True

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: dict, *, strict: bool = True) -> TrainConfig:
        """Build from a dict (papermill parameters, YAML). Unknown keys are an error when strict."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown and strict:
            raise MaskdepthError(f"unknown training parameter(s): {', '.join(unknown)}")
        cfg = cls(**{k: v for k, v in values.items() if k in names})
        cfg.validate()
        return cfg

    @classmethod
    def from_namespace(cls, namespace: dict) -> TrainConfig:
        """Pick the config fields out of a notebook's globals() (the papermill parameters)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_mapping({k: v for k, v in namespace.items() if k in names})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        def choice(name, value, options):
            if value not in options:
                raise MaskdepthError(f"{name}={value!r}: choose one of {', '.join(map(str, options))}")

        _check_types_and_ranges(self)
        choice("task", self.task, TASKS)
        choice("input_mode", self.input_mode, tuple(INPUT_MODES))
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("schedule", self.schedule, SCHEDULES)
        choice("amp", str(self.amp), ("auto", "on", "off", "True", "False"))
        for name in ("epochs", "batch_size", "size", "val_batch_size"):
            if int(getattr(self, name)) < 1:
                raise MaskdepthError(f"{name}={getattr(self, name)!r}: must be >= 1")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise MaskdepthError(f"lr={self.lr!r}: must be a positive number")
        if self.workers < 0 or self.max_steps < 0:
            raise MaskdepthError("workers and max_steps must be >= 0")
        try:
            parse_split_metric(self.best_metric)
        except MaskdepthError as exc:
            raise MaskdepthError(f"best_metric={self.best_metric!r}: {exc}, e.g. seen.loss or seen.iou") from None
        if self.task == "joint" and self.model in SINGLE_TASK_MODELS:
            raise MaskdepthError(f"model {self.model!r} predicts one task: use task=mask or task=depth, or model=joint")

    @property
    def in_channels(self) -> int:
        return INPUT_MODES[self.input_mode]

    @property
    def tasks(self) -> tuple[str, ...]:
        return ("mask", "depth") if self.task == "joint" else (self.task,)


# -- distributed helpers -------------------------------------------------------------
def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _init_distributed(device_name: str) -> tuple[int, int, str]:
    """Join the torchrun process group when launched by torchrun; returns (rank, world, device)."""
    rank, world, local_rank = _dist_env()
    if world == 1:
        return 0, 1, device_name
    import torch.distributed as dist

    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    elif device_name == "auto":
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, device_name


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# -- RNG -------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """All RNG states as tensors and plain data (checkpoints are read with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    keys = keys.numpy() if torch.is_tensor(keys) else np.asarray(keys)  # older checkpoints: a numpy array
    np.random.set_state((kind, keys.astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % 2**31


# -- building blocks -------------------------------------------------------------------
def build_model(cfg: TrainConfig) -> nn.Module:
    from maskdepth.models import create_model

    kwargs = dict(cfg.model_kwargs)
    if cfg.model in SINGLE_TASK_MODELS:
        kwargs.setdefault("task", cfg.task)
    if cfg.weights:
        kwargs["weights"] = cfg.weights
    return create_model(cfg.model, in_channels=cfg.in_channels, **kwargs)


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
        return ls.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(total, 2), pct_start=0.25)

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


def make_loader(dataset, cfg: TrainConfig, *, train: bool, pin_memory: bool, world: int = 1, rank: int = 0,
                generator: torch.Generator | None = None):
    """DataLoader for a split. The shuffle `generator` is re-seeded by the trainer every epoch."""
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = None
    if world > 1 and train:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    batch = cfg.batch_size if train else cfg.val_batch_size
    return DataLoader(
        dataset,
        batch_size=batch,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=pin_memory,
        drop_last=train and len(dataset) // max(world, 1) > batch,
        persistent_workers=cfg.workers > 0,
        generator=generator if train else None,
    )


def _to_device(batch: dict, device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v) and v.is_floating_point():
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def open_split(data: str, split: str, size: int, seed: int):
    """The dataset of one split, or None when `data` has no samples in it (a dataset folder
    made by an import, by real photos or before the `ood` split existed may have none)."""
    from maskdepth.data import build_dataset
    from maskdepth.data.datadir import is_dataset_dir, read_dataset_json

    if is_dataset_dir(data) and not int((read_dataset_json(data).get("counts") or {}).get(split, 0)):
        return None
    dataset = build_dataset(data, split, size=size, seed=seed)
    return dataset if len(dataset) else None


def build_val_sets(data: str, size: int, seed: int) -> tuple[dict, dict[str, int]]:
    """({split: dataset} for every validation split with samples, {split: sample count} for all)."""
    sets = {s: open_split(data, s, size, seed) for s in VAL_SPLITS}
    return {s: ds for s, ds in sets.items() if ds is not None}, {s: len(ds) if ds else 0 for s, ds in sets.items()}


# -- evaluation --------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: nn.Module, loader, criterion, cfg: TrainConfig, device_info) -> dict:
    """Loss and dataset-accumulated metrics of `model` over `loader`.

    Losses are floats (NaN stays NaN, for the divergence check); metrics that are undefined
    on this data (an empty object-size bin, no image to judge the ordering on) are None."""
    from maskdepth.data import model_input
    from maskdepth.metrics import DepthMeter, MaskMeter

    model.eval()
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        batch = _to_device(batch, device_info.device, cfg.channels_last)
        x = model_input(batch, cfg.in_channels)
        with torch.autocast(device_info.device.type, dtype=device_info.amp_dtype, enabled=device_info.eval_amp):
            pred = model(x)
        pred = {k: v.float() for k, v in pred.items()}
        losses = criterion(pred, batch)
        n = x.shape[0]
        count += n
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        if "mask" in pred and "mask" in cfg.tasks:
            mask_meter.update(pred["mask"], batch["mask"])
        if "depth" in pred and "depth" in cfg.tasks:
            depth_meter.update(pred["depth"], batch["depth"], mask=batch["mask"])
    result: dict[str, Any] = {k: float(v / max(count, 1)) for k, v in sums.items()}
    if "mask" in cfg.tasks:
        result.update(json_ready(mask_meter.compute()))
    if "depth" in cfg.tasks:
        result.update(json_ready(depth_meter.compute()))
    return result


def format_duration(seconds: float) -> str:
    """45s, 3m05s, 2h04m."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _same_data(a, b) -> bool:
    """Two `data` values name the same data: equal, or the same dataset folder spelled differently."""
    if str(a) == str(b):
        return True
    pa, pb = Path(str(a)), Path(str(b))
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()


def _metric_value(metrics: dict, key: str) -> float | None:
    split, _, name = key.partition(".")
    value = metrics.get(split, {}).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def _is_better(value: float, best: float | None, metric: str) -> bool:
    return is_better(value, best, metric.partition(".")[2])


# -- the loop ------------------------------------------------------------------------------
class Trainer:
    """Holds the pieces of one run; `fit()` runs the epochs. Use `train(cfg)` for the usual path."""

    def __init__(self, cfg: TrainConfig):
        cfg.validate()
        self.cfg = cfg
        self.rank, self.world, device_name = _init_distributed(cfg.device)
        amp = None if str(cfg.amp) == "auto" else str(cfg.amp) in ("on", "True")
        self.dev = resolve_device(device_name, amp=amp)
        self.is_main = self.rank == 0
        self.out_dir = self._resolve_out_dir()
        self.ckpt_dir = self.out_dir / "checkpoints"

        from maskdepth.data import build_dataset
        from maskdepth.losses import build_loss

        seed_everything(cfg.seed)
        self.train_set = build_dataset(cfg.data, "train", size=cfg.size, seed=cfg.seed, augment=cfg.augment)
        # Every validation split with samples; an empty one (e.g. no ood in an imported folder) is skipped.
        self.val_sets, self.val_counts = build_val_sets(cfg.data, cfg.size, cfg.seed)
        best_split = cfg.best_metric.partition(".")[0]
        if best_split not in self.val_sets:
            raise MaskdepthError(f"best_metric={cfg.best_metric!r}: {cfg.data} has no {best_split} samples")
        self.model = build_model(cfg).to(self.dev.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what we call forward on (DDP wrapper when distributed)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.dev.device.index] if self.dev.device.type == "cuda" else None
            self.net = DDP(self.model, device_ids=ids)
        self.criterion = build_loss(
            task=cfg.task,
            mask_loss=cfg.mask_loss,
            depth_loss=cfg.depth_loss,
            weights={"mask": cfg.mask_weight, "depth": cfg.depth_weight},
            uncertainty=cfg.uncertainty,
        ).to(self.dev.device)
        params = list(self.model.parameters()) + list(self.criterion.parameters())
        self.optimizer = build_optimizer(cfg, params)
        self.shuffle_generator = torch.Generator()
        self.train_loader = make_loader(
            self.train_set, cfg, train=True, pin_memory=self.dev.pin_memory, world=self.world, rank=self.rank,
            generator=self.shuffle_generator,
        )
        self.val_loaders = {
            s: make_loader(ds, cfg, train=False, pin_memory=self.dev.pin_memory) for s, ds in self.val_sets.items()
        }
        self.schedule = Schedule(cfg, self.optimizer, len(self.train_loader))
        use_scaler = self.dev.amp and self.dev.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.epoch = 0  # finished epochs
        self.step = 0
        self.saved_epoch: int | None = None  # the epoch checkpoints/last.pt holds (None: not written)
        self.history: list[dict] = []
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.train_time_s = 0.0
        self.writer = None
        self.epoch_seconds: list[float] = []  # wall time of each epoch of this session (for the ETA)

    # -- folders, logging ---------------------------------------------------------------
    def _resolve_out_dir(self) -> Path:
        if self.cfg.out_dir:
            return Path(self.cfg.out_dir)
        if self.cfg.resume:
            raise MaskdepthError("resume needs out_dir: the run folder to continue")
        name = runs.new_run_name(self.cfg.to_dict())
        out = runs.outputs_root() / runs.stage_label(self.cfg.data) / name
        if self.world > 1:  # every rank must agree on the folder: take rank 0's name
            import torch.distributed as dist

            holder = [str(out)]
            dist.broadcast_object_list(holder, src=0)
            out = Path(holder[0])
        self.cfg.out_dir = str(out)
        return out

    def _info(self) -> dict:
        return {
            "task": self.cfg.task,
            "tasks": list(self.cfg.tasks),
            "input_mode": self.cfg.input_mode,
            "input_size": [self.cfg.size, self.cfg.size],
            "data": self.cfg.data,
        }

    def log(self, message: str) -> None:
        """A line on stdout and in RUN/train.log (which `maskdepth run` shows on its console)."""
        if self.is_main:
            print(message, flush=True)
            self.log_file_only(message)

    def log_file_only(self, message: str) -> None:
        if self.is_main and self.out_dir.is_dir():
            with open(self.out_dir / TRAIN_LOG, "a", encoding="utf-8") as f:
                f.write(message.rstrip("\n") + "\n")

    def _open_writer(self):
        if not (self.is_main and self.cfg.tensorboard):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a declared dependency; stay usable without it
            self.log("tensorboard is not installed: skipping TensorBoard logs")
            return None
        return SummaryWriter(log_dir=str(self.out_dir / "tb"))

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, name: str, metrics: dict) -> None:
        """Write checkpoints/NAME. It carries the history up to this epoch: last.pt is the one
        source of truth that a resume restores history.json, best.pt and metrics.json from."""
        save_checkpoint(
            self.ckpt_dir / name,
            self.model,
            info=self._info(),
            config=self.cfg.to_dict(),
            epoch=self.epoch,
            step=self.step,
            optimizer=self.optimizer,
            scheduler=self.schedule,
            scaler=self.scaler,
            criterion=self.criterion,
            rng=rng_state(),
            metrics={
                **metrics,
                "best_value": self.best_value,
                "best_epoch": self.best_epoch,
                "train_time_s": self.train_time_s,
            },
            history=self.history,
        )

    def load_for_resume(self) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise MaskdepthError(f"resume: {path} does not exist (nothing to continue)")
        ckpt = load_checkpoint(path, map_location=self.dev.device)
        saved = ckpt.get("config") or {}
        now = self.cfg.to_dict()
        differ = [k for k in RESUME_KEYS if k in saved and saved[k] != now[k]]
        if differ:
            raise MaskdepthError(
                f"resume: {path} was trained with {', '.join(f'{k}={saved[k]!r}' for k in differ)}, but this run "
                f"asks for {', '.join(f'{k}={now[k]!r}' for k in differ)}: resume with the run's settings "
                f"({self.out_dir / 'config.json'}), or start a new run in another out_dir"
            )
        if "data" in saved and not _same_data(saved["data"], now["data"]):
            raise MaskdepthError(
                f"resume: {path} was trained on data {saved['data']!r}, but this run asks for {now['data']!r}: a run "
                "never switches data; resume without --data (the run's own is used), or start a new run in another "
                "out_dir"
            )
        load_weights(self.model, ckpt["state_dict"], f"resume: {path}")
        parts = [("optimizer", self.optimizer, True), ("scheduler", self.schedule, True),
                 ("scaler", self.scaler, False), ("criterion", self.criterion, False)]
        for key, target, required in parts:
            if required or ckpt.get(key):
                try:
                    target.load_state_dict(ckpt[key])
                except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
                    raise MaskdepthError(
                        f"resume: {path}: its {key} state does not fit this run ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); resume with the run's "
                        "settings, or start a new run in another out_dir"
                    ) from exc
        if ckpt.get("rng"):
            set_rng_state(ckpt["rng"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.saved_epoch = self.epoch
        m = ckpt.get("metrics", {})
        self.best_value, self.best_epoch = m.get("best_value"), m.get("best_epoch")
        self.train_time_s = float(m.get("train_time_s", 0.0))
        hist = self.out_dir / "history.json"
        if isinstance(ckpt.get("history"), list) and (ckpt["history"] or self.epoch == 0):
            self.history = list(ckpt["history"])
        elif hist.is_file():  # checkpoints of older versions: history.json, up to the checkpoint's epoch
            self.history = [e for e in json.loads(hist.read_text())["epochs"] if e["epoch"] <= self.epoch]
        if self.is_main:
            self._repair_after_kill(path)
        changed = [k for k in now if k in saved and k not in ("out_dir", "resume", "data") and saved[k] != now[k]]
        if changed:
            self.log("resume: settings changed since the checkpoint: "
                     + ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed))
        for note in self.schedule.continue_with(saved):
            self.log(f"resume: {note}")
        self.log(f"resumed from {path} at epoch {self.epoch} (step {self.step})")

    def _repair_after_kill(self, last: Path) -> None:
        """A kill after last.pt was written but before best.pt / history.json were leaves them
        one epoch behind: bring them back in line with last.pt."""
        best = self.ckpt_dir / "best.pt"
        if self.best_epoch is not None and self.best_epoch == self.epoch:
            import filecmp

            if not best.is_file() or not filecmp.cmp(best, last, shallow=False):
                copy_file(last, best)  # last.pt *is* the best epoch's state
                self.log(f"repaired {best} (the run was stopped before it was written)")
        write_json(self.out_dir / "history.json", {"epochs": self.history})

    def _last_good(self) -> str:
        """Where the last good state is, naming only a file that exists."""
        last = self.ckpt_dir / "last.pt"
        if self.saved_epoch is not None and last.is_file():
            return f"{last} holds the last good state (epoch {self.saved_epoch})."
        return "No checkpoint was written (it diverged before the first epoch ended)."

    def _check_finite(self, record: dict) -> None:
        """Validation NaN/inf stops training like a training NaN; non-finite weights are never saved."""
        hint = f"Try a lower lr (now {self.cfg.lr}) or amp=off."
        for split, values in record.items():
            if isinstance(values, dict) and "loss" in values and not math.isfinite(values["loss"]):
                raise TrainingDiverged(
                    f"non-finite {split} loss ({values['loss']}) at epoch {self.epoch}; training stopped. "
                    f"{self._last_good()} {hint}"
                )
        bad = nonfinite_weights(unwrap(self.model).state_dict())
        if bad:
            raise TrainingDiverged(
                f"the weights hold NaN or infinite values after epoch {self.epoch} ({bad[0]}); training stopped. "
                f"{self._last_good()} {hint}"
            )

    # -- one epoch ---------------------------------------------------------------------------
    def train_one_epoch(self) -> dict:
        from maskdepth.data import model_input
        from maskdepth.data.photometric import augment_batch
        from maskdepth.data.zoom import zoom_batch

        cfg = self.cfg
        self.net.train()
        if hasattr(self.train_loader.sampler, "set_epoch"):
            self.train_loader.sampler.set_epoch(self.epoch)
        sums: dict[str, float] = {}
        seen = 0
        t0 = last_note = time.perf_counter()
        bar = progress(
            self.train_loader,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
            disable=not (self.is_main and cfg.progress_bar),
        )
        for batch in bar:
            if cfg.max_steps and self.step >= cfg.max_steps:
                break
            batch = _to_device(batch, self.dev.device, cfg.channels_last)
            if cfg.augment:
                batch = zoom_batch(batch, cfg.seed, self.epoch, cfg.zoom)
                batch = augment_batch(batch, cfg.seed, self.epoch, cfg.photometric)
            x = model_input(batch, cfg.in_channels)
            with torch.autocast(self.dev.device.type, dtype=self.dev.amp_dtype, enabled=self.dev.amp):
                pred = self.net(x)
            pred = {k: v.float() for k, v in pred.items()}
            losses = self.criterion(pred, batch)
            loss = losses["loss"]
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"non-finite loss ({float(loss.detach())}) at epoch {self.epoch + 1}, step {self.step + 1}; "
                    f"training stopped. {self._last_good()} Try a lower lr (now {cfg.lr}) or amp=off."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.after_step()
            self.step += 1
            n = x.shape[0]
            seen += n
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
            if self.is_main and time.perf_counter() - last_note >= PROGRESS_LOG_EVERY_S:
                last_note = time.perf_counter()
                self.log_file_only(self._progress_line(seen, sums, last_note - t0))
        bar.close()
        return {k: v / max(seen, 1) for k, v in sums.items()} | {"samples": seen * self.world}

    def _log_images(self, epoch: int) -> None:
        """A GT/prediction grid in TensorBoard (input, GT mask, pred mask, GT depth, pred depth), drawn
        like the validation grids (`maskdepth.viz`): depth near = bright on the fixed log scale
        [DEPTH_MIN, DEPTH_MAX] (`maskdepth.depthviz`), with its colour bar in metres."""
        from maskdepth import viz
        from maskdepth.data import model_input

        split = "unseen" if "unseen" in self.val_sets else next(iter(self.val_sets))
        ds = self.val_sets[split]
        n = min(8, len(ds))
        batch = {k: torch.stack([ds[i][k] for i in range(n)]) for k in ("image", "bg", "mask", "depth")}
        batch = _to_device(batch, self.dev.device, False)
        self.model.eval()
        with torch.no_grad():
            pred = self.model(model_input(batch, self.cfg.in_channels))
        masks = "mask" in pred
        depths = "depth" in pred
        grid = viz.prediction_grid(
            batch["image"],
            gt_mask=batch["mask"] if masks else None,
            pred_prob=torch.sigmoid(pred["mask"].float()) if masks else None,
            gt_depth=batch["depth"] if depths else None,
            pred_depth=pred["depth"].float() if depths else None,
            per_row=n,
        )
        image = viz.figure_to_array(viz.grid_figure(grid, f"{split} · epoch {epoch}"))
        self.writer.add_image(f"val_{split}/grid", image, epoch, dataformats="HWC")

    def _write_tb(self, record: dict) -> None:
        from maskdepth.metrics import CATALOGUE

        w, e = self.writer, record["epoch"]
        for split in ("train", *VAL_SPLITS):
            for k, v in record.get(split, {}).items():
                is_count = k in CATALOGUE and CATALOGUE[k].higher_is_better is None
                if isinstance(v, (int, float)) and k != "samples" and not is_count:
                    w.add_scalar(f"{split}/{k}", v, e)
        w.add_scalar("lr", record["lr"], e)
        w.add_scalar("time/epoch_s", record["time_s"], e)
        w.add_scalar("time/samples_per_s", record["samples_per_s"], e)
        if self.cfg.grid_every and (e % self.cfg.grid_every == 0 or e == self.cfg.epochs):
            self._log_images(e)
        w.flush()

    def _write_hparams(self, result: dict) -> None:
        """TensorBoard's HParams tab: the run's hyperparameters (TrainConfig) with its final metrics
        (metrics.json: the best epoch's, per split, as hparam/SPLIT.METRIC), so runs compare there."""
        if not (self.is_main and self.cfg.tensorboard and self.history):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams
        except ImportError:
            return
        from maskdepth.metrics import CATALOGUE

        skip = ("out_dir", "resume", "tensorboard", "progress_bar")  # where and how, not what was trained
        hp = {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
              for k, v in self.cfg.to_dict().items() if k not in skip}
        metrics = {}
        for split in VAL_SPLITS:
            for k, v in (result.get(split) or {}).items():
                is_count = k in CATALOGUE and CATALOGUE[k].higher_is_better is None
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and not is_count:
                    metrics[f"hparam/{split}.{k}"] = float(v)
        for k in ("best_epoch", "epochs", "train_time_s", "params"):
            if isinstance(result.get(k), (int, float)):
                metrics[f"hparam/{k}"] = float(result[k])
        exp, ssi, sei = hparams(hp, metrics)
        with SummaryWriter(log_dir=str(self.out_dir / "tb")) as w:
            for summary in (exp, ssi, sei):
                w.file_writer.add_summary(summary, self.epoch)
            for k, v in metrics.items():
                w.add_scalar(k, v, self.epoch)

    def _console_line(self, r: dict) -> str:
        from maskdepth.metrics import format_value

        parts = [f"epoch {r['epoch']:>3}/{self.cfg.epochs}", f"loss {r['train']['loss']:.4f}"]
        shown = (("iou", "IoU"), ("delta1", "d1"), ("sa_delta1", "sa-d1"), ("abs_rel", "AbsRel"), ("ordering", "ord"))
        for split in VAL_SPLITS:
            if split not in r:
                continue
            m = r[split]
            parts.append(f"{split}: " + " ".join(f"{name} {format_value(k, m[k])}" for k, name in shown if k in m))
        parts.append(f"lr {r['lr']:.2e}  {r['time_s']:.1f}s  {r['samples_per_s']:.0f} samples/s")
        left = self.cfg.epochs - r["epoch"]
        if left > 0 and self.epoch_seconds and not (self.cfg.max_steps and self.step >= self.cfg.max_steps):
            recent = self.epoch_seconds[-5:]
            parts[-1] += f"  ETA {format_duration(left * sum(recent) / len(recent))}"
        return " | ".join(parts)

    def _progress_line(self, seen: int, sums: dict, seconds: float) -> str:
        """Within a long epoch (written to train.log every PROGRESS_LOG_EVERY_S seconds)."""
        steps = len(self.train_loader)
        done = min(seen // max(self.train_loader.batch_size or 1, 1), steps)
        rate = seen / max(seconds, 1e-9)
        eta = (steps - done) * seconds / max(done, 1)
        return (f"epoch {self.epoch + 1:>3}/{self.cfg.epochs} step {done}/{steps} loss "
                f"{sums.get('loss', 0.0) / max(seen, 1):.4f}  {rate * self.world:.0f} samples/s  "
                f"epoch ETA {format_duration(eta)}")

    # -- run -----------------------------------------------------------------------------------
    def fit(self) -> dict:
        cfg = self.cfg
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            previous = [name for name in RUN_FILES if (self.out_dir / name).exists()]
            if not cfg.resume and previous:
                how = ("pass --resume (resume=True in Python) to continue it"
                       if "checkpoints/last.pt" in previous else
                       "it has no checkpoints/last.pt to resume from: move those files away")
                raise MaskdepthError(
                    f"{self.out_dir} already holds a run ({', '.join(previous)}): {how}, or choose another "
                    "--out"
                )
        _barrier(self.world)
        if cfg.resume:
            self.load_for_resume()
        if self.is_main:
            write_json(self.out_dir / "config.json", cfg.to_dict())
        self.writer = self._open_writer()
        n_params = sum(p.numel() for p in unwrap(self.model).parameters())
        self.log(
            f"training {cfg.model} ({n_params:,} params) on {cfg.data} [{len(self.train_set)} train, "
            + ", ".join(f"{n} {s}" if n else f"no {s} samples" for s, n in self.val_counts.items())
            + f"] at {cfg.size}px, "
            f"task {cfg.task}, device {self.dev.device}{' +AMP' if self.dev.amp else ''}, world {self.world} -> {self.out_dir}"
        )
        try:
            while self.epoch < cfg.epochs and not (cfg.max_steps and self.step >= cfg.max_steps):
                # Re-seed from (seed, epoch): an interrupted epoch replays identically on resume.
                seed_everything(epoch_seed(cfg.seed, self.epoch))
                self.shuffle_generator.manual_seed(epoch_seed(cfg.seed, self.epoch))
                t0 = time.perf_counter()
                train_stats = self.train_one_epoch()
                train_s = time.perf_counter() - t0
                self._sync_buffers()
                self.epoch += 1
                record: dict[str, Any] = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
                if self.is_main:
                    for split, loader in self.val_loaders.items():
                        record[split] = evaluate(self.model, loader, self.criterion, cfg, self.dev)
                _barrier(self.world)
                self.schedule.after_epoch(record.get("seen", {}).get("loss"))
                self.train_time_s += time.perf_counter() - t0
                record["train"] = {k: v for k, v in train_stats.items() if k != "samples"}
                record["time_s"] = time.perf_counter() - t0
                record["samples_per_s"] = train_stats["samples"] / max(train_s, 1e-9)
                self.epoch_seconds.append(record["time_s"])
                if self.is_main:
                    self._end_epoch(record)
                _barrier(self.world)
        finally:
            if self.writer is not None:
                self.writer.close()
        result = self._final_metrics() if self.is_main else {}
        _barrier(self.world)
        return result

    def _sync_buffers(self) -> None:
        """DDP keeps parameters identical; BatchNorm statistics drift per rank after the last
        forward, so rank 0's are broadcast at each epoch end (the ones it validates and saves)."""
        if self.world > 1:
            import torch.distributed as dist

            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    def _end_epoch(self, record: dict) -> None:
        self._check_finite(record)
        self.history.append(record)
        value = _metric_value(record, self.cfg.best_metric)
        improved = value is not None and _is_better(value, self.best_value, self.cfg.best_metric)
        if improved:
            self.best_value, self.best_epoch = value, self.epoch
        metrics = {**{s: record[s] for s in VAL_SPLITS if s in record}, "epoch": self.epoch}
        # Write order: last.pt (holds the history and best_epoch: the commit point), then best.pt
        # (a copy of it), then history.json. A resume after a kill in between repairs the last two.
        self.save("last.pt", metrics)
        self.saved_epoch = self.epoch
        if improved:
            copy_file(self.ckpt_dir / "last.pt", self.ckpt_dir / "best.pt")
        write_json(self.out_dir / "history.json", {"epochs": self.history})
        if self.writer is not None:
            self._write_tb(record)
        self.log(self._console_line(record) + ("  *best" if improved else ""))

    def _final_metrics(self) -> dict:
        best = next((r for r in self.history if r["epoch"] == self.best_epoch), self.history[-1] if self.history else {})
        n_params = sum(p.numel() for p in unwrap(self.model).parameters())
        result = {
            "model": self.cfg.model,
            "params": n_params,
            "task": self.cfg.task,
            "data": self.cfg.data,
            "size": self.cfg.size,
            "epochs": self.epoch,
            "steps": self.step,
            "train_time_s": round(self.train_time_s, 2),
            "best_metric": self.cfg.best_metric,
            "best_epoch": self.best_epoch,
            # One entry per validation split; {} for a split without samples (see n_samples).
            **{s: best.get(s, {}) for s in VAL_SPLITS},
            "n_samples": dict(self.val_counts),
            "last": {s: self.history[-1].get(s, {}) for s in VAL_SPLITS} if self.history else {},
            "device": str(self.dev.device),
            "world_size": self.world,
        }
        write_json(self.out_dir / "metrics.json", result)
        self._write_hparams(result)
        return result


def resume_config(out_dir: str | os.PathLike, given: dict | None = None) -> TrainConfig:
    """The config that continues the run in `out_dir`: the run's own settings (its config.json,
    else the config inside checkpoints/last.pt) with `given` (what the command line sets) on
    top. Nothing falls back to the defaults of a fresh run; a field added since the run was
    started takes its default."""
    folder = Path(out_dir)
    given = dict(given or {})
    if (folder / "config.json").is_file():
        from maskdepth.io import read_json

        saved = read_json(folder / "config.json")
    elif (folder / "checkpoints" / "last.pt").is_file():
        saved = load_checkpoint(folder / "checkpoints" / "last.pt", map_location="cpu").get("config") or {}
    else:
        raise MaskdepthError(f"resume: {folder} holds no run to continue (no config.json, no checkpoints/last.pt)")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in names}
    return TrainConfig.from_mapping({**values, **given, "out_dir": str(folder), "resume": True})


def train(cfg: TrainConfig) -> dict:
    """Train according to `cfg`; returns the final metrics (also in RUN/metrics.json)."""
    trainer = Trainer(cfg)
    return trainer.fit()
