"""What this machine will do with a stage, before it starts: `maskdepth doctor`.

The rules, each written once and read from the machine's properties (`Machine`, fakeable in tests):

- precision: CUDA autocast in bf16 on compute capability >= 8.0, float16 with a GradScaler
  before (`maskdepth.device.cuda_autocast_dtype`); on a CPU, float32 unless the CPU has native
  bf16 and bf16 timed clearly faster (`maskdepth.training.precision`, remembered per machine);
- workers: one data-loading process per CPU but one (the training process keeps a core), at
  most MAX_WORKERS (`workers_for`);
- batch and lr together: a stage that adapts (the full stage) keeps its batch where it fits the
  device's memory and halves it where it does not, and its lr follows the batch linearly
  (`scale_batch`, the only place batch and lr change together);
- pinned memory on CUDA only.

`machine_profile()` says it in a line (the set-up cell prints it); `estimate_epochs` times 20
optimizer steps of the stages' model and scales them to one epoch of each stage.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

MAX_WORKERS = 8  # data-loading processes at most (more only wait for the GPU)
MIN_BATCH = 8  # a batch is never halved below this
MEMORY_SHARE = 0.6  # of the device's memory that training may plan to use (the rest: allocator, cuDNN)
TIMING_STEPS = 20


@dataclass(frozen=True)
class Machine:
    """What the rules read: the training device and the host's CPUs."""

    device: str  # "cuda" | "cpu" | "mps"
    name: str  # GPU name, or the CPU model
    cpu_count: int
    capability: tuple[int, int] | None = None  # CUDA compute capability
    memory_gb: float | None = None  # the GPU's memory; None on a CPU (MASKDEPTH_MEMORY_LIMIT applies)
    cpu_bf16: bool = False  # native bf16 on this CPU (AVX512-BF16 / AMX)

    def to_dict(self) -> dict:
        return asdict(self)


def current_machine(device: str = "auto") -> Machine:
    import torch

    from maskdepth.device import cpu_has_fast_bf16, resolve_device
    from maskdepth.training.precision import cpu_name

    dev = resolve_device(device).device
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return Machine("cuda", props.name, cpus, (props.major, props.minor), round(props.total_memory / 2**30, 1),
                       cpu_has_fast_bf16())
    return Machine(dev.type, cpu_name(), cpus, None, None, cpu_has_fast_bf16())


# -- the rules -------------------------------------------------------------------------------
def precision_for(machine: Machine) -> tuple[str, str]:
    """(what autocast runs in: "bf16" | "float16" | "float32" | "float32 or bf16", why)."""
    if machine.device == "cuda":
        import torch

        from maskdepth.device import cuda_autocast_dtype

        cap = ".".join(map(str, machine.capability or (0, 0)))
        if cuda_autocast_dtype(machine.capability or (0, 0)) == torch.bfloat16:
            return "bf16", f"CUDA compute capability {cap} >= 8.0: bf16 autocast, no GradScaler"
        return "float16", f"CUDA compute capability {cap} < 8.0: float16 autocast with a GradScaler"
    if machine.device == "cpu":
        if not machine.cpu_bf16:
            return "float32", "this CPU has no native bf16 (AVX512-BF16/AMX)"
        return "float32 or bf16", "native bf16: the first run times both and keeps bf16 only if >= 1.15x faster"
    return "float32", f"{machine.device}: no autocast"


def workers_for(cpu_count: int) -> int:
    """Data-loading workers: every CPU but the training process's, at most MAX_WORKERS."""
    return max(0, min(MAX_WORKERS, int(cpu_count) - 1))


def scale_batch(batch: int, lr: float, new_batch: int) -> tuple[int, float]:
    """The one rule that changes a batch: the lr follows it linearly (a stage's lr is tuned for its batch)."""
    return int(new_batch), lr * new_batch / batch


def memory_bytes(machine: Machine) -> float:
    """What training may plan to use: MEMORY_SHARE of the GPU's memory, else the memory limit."""
    if machine.memory_gb:
        return machine.memory_gb * 2**30 * MEMORY_SHARE
    from maskdepth.budget import memory_limit

    return memory_limit()


def fit_batch(batch: int, lr: float, footprint, machine: Machine) -> tuple[int, float]:
    """The stage's batch where it fits the machine's memory (`maskdepth.budget` estimate), else
    halved until it does (not below MIN_BATCH), with the lr scaled with it."""
    fits = batch
    while fits > MIN_BATCH and footprint.bytes(fits, training=True) > memory_bytes(machine):
        fits //= 2
    return scale_batch(batch, lr, fits) if fits != batch else (batch, lr)


def adapt_to_machine(defaults: dict, machine: Machine | None = None, footprint=None) -> dict:
    """A stage's training defaults made to fit `machine` (workers, batch and lr): see the module doc."""
    machine = machine or current_machine()
    out = dict(defaults)
    out["workers"] = workers_for(machine.cpu_count)
    if footprint is None:
        footprint = model_footprint(out)
    out["batch_size"], out["lr"] = fit_batch(int(out["batch_size"]), float(out["lr"]), footprint, machine)
    return out


def model_footprint(params: dict):
    """Memory of the model `params` describe (`maskdepth.budget.footprint`, on the meta device)."""
    from maskdepth.budget import footprint
    from maskdepth.models import model_entry
    from maskdepth.train import TrainConfig

    names = TrainConfig.__dataclass_fields__
    cfg = TrainConfig.from_mapping({k: v for k, v in params.items() if k in names}, strict=False)
    kwargs = dict(cfg.model_kwargs)
    option = model_entry(cfg.model).task_option
    if option is not None:
        kwargs.setdefault(option, cfg.task)
    return footprint(cfg.model, cfg.in_channels, kwargs, cfg.size)


# -- the profile -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    machine: Machine
    precision: str
    precision_reason: str
    workers: int
    pin_memory: bool
    stages: dict  # stage -> {"batch_size", "lr", "workers", "n_train"}

    def line(self) -> str:
        m = self.machine
        what = f"GPU {m.name} ({m.memory_gb} GB, compute {'.'.join(map(str, m.capability or ()))})" \
            if m.device == "cuda" else f"no GPU: {m.device} {m.name}"
        full = self.stages.get("full", {})
        return (f"{what}; precision {self.precision}; {m.cpu_count} CPUs -> {self.workers} loader workers; "
                f"full stage batch {full.get('batch_size')} at lr {full.get('lr'):.3g}; `maskdepth doctor` times it")

    def to_dict(self) -> dict:
        return {**asdict(self), "machine": self.machine.to_dict()}


def machine_profile(machine: Machine | None = None) -> Profile:
    from maskdepth.stages import STAGES, stage_defaults

    machine = machine or current_machine()
    precision, why = precision_for(machine)
    stages = {}
    for name, stage in STAGES.items():
        params = stage_defaults(name, machine=machine)
        stages[name] = {"batch_size": params["batch_size"], "lr": params["lr"], "workers": params.get("workers", 0),
                        "n_train": stage.n_train}
    return Profile(machine, precision, why, workers_for(machine.cpu_count), machine.device == "cuda", stages)


def time_steps(params: dict, batch: int, steps: int = TIMING_STEPS, device: str = "auto") -> float:
    """Seconds per optimizer step of the model `params` describe, at `batch`, on random inputs:
    forward, the stage's losses' cost stood in by a mean, backward, AdamW step, in the precision
    training would use; the median of `steps` after 3 untimed."""
    import statistics

    import torch

    from maskdepth.device import resolve_device
    from maskdepth.models import create_model, model_entry
    from maskdepth.train import TrainConfig

    names = TrainConfig.__dataclass_fields__
    cfg = TrainConfig.from_mapping({k: v for k, v in params.items() if k in names and k != "weights"}, strict=False)
    dev = resolve_device(device)
    kwargs = {k: v for k, v in dict(cfg.model_kwargs).items() if k != "weights"}
    option = model_entry(cfg.model).task_option
    if option is not None:
        kwargs.setdefault(option, cfg.task)
    model = create_model(cfg.model, in_channels=cfg.in_channels, **kwargs).to(dev.device).train()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    x = torch.rand(batch, cfg.in_channels, cfg.size, cfg.size, device=dev.device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    amp = dev.device.type == "cuda"  # a CPU: float32 here (where bf16 times faster, training will be faster)

    def step() -> float:
        t0 = time.perf_counter()
        with torch.autocast(dev.device.type, dtype=dev.amp_dtype, enabled=amp):
            out = model(x)
        loss = sum(v.float().mean() for v in out.values())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(3):
        step()
    return statistics.median(step() for _ in range(steps))


def estimate_epochs(profile: Profile, steps: int = TIMING_STEPS, device: str = "auto", log=None) -> dict:
    """{stage: seconds of one epoch's training steps} from a timing of `steps` steps of the
    stages' model (the full stage's batch on a GPU, the 1k batch on a CPU), scaled by samples."""
    from maskdepth.stages import stage_defaults

    stage = "full" if profile.machine.device == "cuda" else "1k"
    params = stage_defaults(stage, machine=profile.machine)
    batch = int(params["batch_size"])
    per_step = time_steps(params, batch, steps, device)
    per_sample = per_step / batch
    if log:
        log(f"timing     {steps} steps of the stages' model ({params.get('model', 'joint')} {params.get('model_kwargs')}) at "
            f"batch {batch}, {params['size']} px: {per_step * 1000:.0f} ms/step, {1 / per_sample:.0f} samples/s")
    return {name: info["n_train"] * per_sample for name, info in profile.stages.items()}


def describe_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
