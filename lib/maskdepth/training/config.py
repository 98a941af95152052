"""What a training run depends on: `TrainConfig` (its fields are the papermill parameters and
the `maskdepth train` flags), how it is checked, and `resume_config` (the config that continues
a run folder).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from maskdepth.core.errors import MaskdepthError
from maskdepth.evaluation.catalogue import parse_split_metric

RUN_TASKS = ("mask", "depth", "joint")  # what a run trains: one of a model's OUTPUTS, or both ("joint")
INPUT_MODES = {"fg_bg": 3, "bg_fg_bg": 6}
OPTIMIZERS = ("sgd", "adam", "adamw")
AMP_MODES = ("auto", "on", "off")
SCHEDULES = ("constant", "step", "constant_then_step", "plateau", "onecycle")
# Settings a resumed run must share with the checkpoint it continues (the states must fit).
RESUME_KEYS = ("model", "model_kwargs", "task", "input_mode", "optimizer", "schedule", "uncertainty", "ema",
               "encoder_lr")
# Lower bounds of numeric parameters (inclusive; lr must also be > 0, checked in validate).
MINIMUM = {"weight_decay": 0, "momentum": 0, "step_size": 1, "gamma": 0, "constant_epochs": 0, "mask_weight": 0,
           "depth_weight": 0, "object_weight": 0, "grid_every": 0, "seed": 0, "workers": 0, "max_steps": 0, "photometric": 0, "zoom": 1, "aspect": 1,
           "ema": 0, "encoder_lr": 0}


def _check_types_and_ranges(cfg) -> None:
    """Strict types (true is no number of epochs, "no" is no boolean), finite numbers, known
    ranges, and a device name this tool runs on: errors name the parameter."""
    from maskdepth.core.device import check_device_name
    from maskdepth.core.params import field_defaults

    for name, default in field_defaults(type(cfg)).items():
        value = getattr(cfg, name)
        if isinstance(default, bool):
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
    if cfg.momentum >= 1:
        raise MaskdepthError(f"momentum={cfg.momentum!r}: must be in [0, 1) (e.g. 0.9)")
    if cfg.ema >= 1:
        raise MaskdepthError(f"ema={cfg.ema!r}: the moving average's decay must be below 1 (e.g. 0.99; 0: off)")
    check_device_name(cfg.device)


@dataclass
class TrainConfig:
    """Everything a run depends on. Field names are the papermill parameters and CLI flags;
    each field's comment is its help, the one source of `maskdepth train --help` and of
    02_train's parameters cell (`make notebooks` writes it: `maskdepth.workflow.nbclean`).

    Its defaults are the default recipe, the one every entry point trains (maskdepth train,
    02_train, the stages, playground.ipynb): the `joint` model as registered (an ImageNet
    EfficientNet-Lite0 encoder with context: `maskdepth.models.joint`), the encoder at 0.3x
    the lr, the l1_ssi_ssid depth loss, read with test-time augmentation flip_scale; a stage
    changes only size, epochs, batch and lr
    (measurements: docs/recipes.md)."""

    data: str = "playground"  # stage name (playground | 1k | full) or a dataset folder
    out_dir: str = ""  # run folder; "" -> outputs/<stage>/<timestamp>-<hash>
    model: str = "joint"  # network architecture (see `maskdepth models`)
    model_kwargs: dict = field(default_factory=dict)  # JSON options of the model, e.g. '{"base_channels": 16}'
    weights: str = ""  # the encoder's initial weights: imagenet | none | a state_dict file ("": the model's default)
    task: str = "joint"  # mask | depth | joint (the capstone trained one model per task)
    input_mode: str = "fg_bg"  # fg_bg (3 channels) | bg_fg_bg (6 channels)
    size: int = 64  # square working size in pixels (images are resized to it)
    augment: bool = True  # random flips per sample and batched photometric augmentation (maskdepth.augment.photometric)
    photometric: float = 1.0  # strength of the photometric augmentation when augment is on (0: off)
    zoom: float = 1.0  # largest zoom (crop + resize, depth kept in metres) when augment is on (1: off)
    aspect: float = 1.0  # largest long/short side ratio of non-square training crops when augment is on (1: off)
    mask_loss: str = "bce_dice"  # loss of the mask head
    depth_loss: str = "l1_ssi_ssid"  # loss of the depth head
    mask_weight: float = 1.0  # weight of the mask loss in the total
    depth_weight: float = 1.0  # weight of the depth loss in the total
    object_weight: float = 0.0  # weight of the object-region depth term, added to the depth loss (0: off)
    uncertainty: bool = False  # learned task weighting (Kendall et al. 2018)
    optimizer: str = "adamw"  # optimizer
    lr: float = 3e-3  # learning rate (peak lr of the onecycle schedule)
    encoder_lr: float = 0.3  # the encoder's lr as a fraction of lr (a pretrained encoder usually wants less)
    weight_decay: float = 1e-4  # weight decay of the optimizer
    ema: float = 0.0  # decay of a moving average of the weights that is evaluated and saved (0: off; e.g. 0.99)
    momentum: float = 0.9  # SGD only
    schedule: str = "onecycle"  # learning-rate schedule
    step_size: int = 10  # step / constant_then_step: epochs between decays
    gamma: float = 0.1  # step / constant_then_step: factor of each lr decay
    constant_epochs: int = 0  # constant_then_step: epochs at the initial lr before StepLR starts
    epochs: int = 10  # epochs to train
    max_steps: int = 0  # stop after this many optimizer steps in total (0: no limit)
    batch_size: int = 32  # training batch size (per process under torchrun)
    workers: int = 0  # DataLoader worker processes (0: load in the main process)
    seed: int = 0  # seed of the data order, augmentation and initial weights
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (CUDA: bf16 from compute capability 8, else float16; CPU: bf16 only where it times clearly faster) | on | off
    channels_last: bool = True  # channels_last memory format for training (bench/ figure 3 times it against the default format)
    val_batch_size: int = 64  # validation batch size
    tta: str = "flip_scale"  # how validate and predict read the model: none | flip (and its mirror) | flip_scale (also at 4/3 size)
    grid_every: int = 5  # epochs between TensorBoard image grids (0: never)
    # Checkpoint selection uses the `seen` split only; `unseen` and `ood` stay untouched test splits.
    best_metric: str = "seen.loss"
    resume: bool = False  # continue from out_dir/checkpoints/last.pt
    tensorboard: bool = True  # write TensorBoard logs to RUN/tb
    progress_bar: bool = True  # show a progress bar per epoch

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
        choice("task", self.task, RUN_TASKS)
        choice("input_mode", self.input_mode, tuple(INPUT_MODES))
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("schedule", self.schedule, SCHEDULES)
        choice("amp", self.amp, AMP_MODES)
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
        if self.task == "joint":
            _check_joint_model(self.model)
        from maskdepth.models.tta import check_tta  # here: the config module imports no torch at import time

        check_tta(self.tta)

    @property
    def in_channels(self) -> int:
        return INPUT_MODES[self.input_mode]

    @property
    def tasks(self) -> tuple[str, ...]:
        """The model outputs this run trains."""
        from maskdepth.models.blocks import OUTPUTS  # here: the config module imports no torch

        return OUTPUTS if self.task == "joint" else (self.task,)


def _check_joint_model(name: str) -> None:
    """task=joint needs a model that predicts both outputs (an unknown name is left to create_model,
    whose error lists the choices)."""
    from maskdepth.models import list_models, model_entry

    if name in list_models() and model_entry(name).single_task:
        both = [n for n in list_models() if not model_entry(n).single_task]
        raise MaskdepthError(f"model {name!r} predicts one task: use task=mask or task=depth, or "
                             + " or ".join(f"model={n}" for n in both))


def resume_config(out_dir: str | os.PathLike, given: dict | None = None) -> TrainConfig:
    """The config that continues the run in `out_dir`: the run's own settings (its config.json,
    written when the run started) with `given` (what the command line sets) on top. Nothing
    falls back to the defaults of a fresh run; a field added since the run was started takes
    its default."""
    folder = Path(out_dir)
    given = dict(given or {})
    if (folder / "config.json").is_file():
        from maskdepth.core.fileio import read_json

        saved = read_json(folder / "config.json")
    elif (folder / "checkpoints" / "last.pt").is_file():
        raise MaskdepthError(f"resume: {folder / 'checkpoints' / 'last.pt'} has no config.json beside it: written by "
                             "an older maskdepth, whose runs cannot be continued; retrain it")
    else:
        raise MaskdepthError(f"resume: {folder} holds no run to continue (no config.json, no checkpoints/last.pt)")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in names}
    return TrainConfig.from_mapping({**values, **given, "out_dir": str(folder), "resume": True})


def same_data(a, b) -> bool:
    """Two `data` values name the same data: equal, or the same dataset folder spelled differently."""
    if str(a) == str(b):
        return True
    pa, pb = Path(str(a)), Path(str(b))
    return pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve()


def check_resumable(saved: dict, now: dict, checkpoint: Path, out_dir: Path) -> list[str]:
    """A run resumed with config `now` from a checkpoint trained with config `saved` must share the
    RESUME_KEYS and the data (errors say how to resume); returns the other settings that changed."""
    differ = [k for k in RESUME_KEYS if k in saved and saved[k] != now[k]]
    if differ:
        raise MaskdepthError(
            f"resume: {checkpoint} was trained with {', '.join(f'{k}={saved[k]!r}' for k in differ)}, but this run "
            f"asks for {', '.join(f'{k}={now[k]!r}' for k in differ)}: resume with the run's settings "
            f"({out_dir / 'config.json'}), or start a new run in another out_dir"
        )
    if "data" in saved and not same_data(saved["data"], now["data"]):
        raise MaskdepthError(
            f"resume: {checkpoint} was trained on data {saved['data']!r}, but this run asks for {now['data']!r}: a run "
            "never switches data; resume without --data (the run's own is used), or start a new run in another "
            "out_dir"
        )
    return [k for k in now if k in saved and k not in ("out_dir", "resume", "data") and saved[k] != now[k]]
