"""The machine rules, each written once and read from a machine's properties (`Machine`, fakeable
in tests): precision, data-loading workers, and batch with lr. `maskdepth.workflow.profile` reports them
(`maskdepth doctor`); `maskdepth.plan.stages` applies them to the stage that adapts (full).

Batch and lr change together only here (`scale_batch`). Imports of the rest of maskdepth stay
inside functions and reach only device, budget and models (maskdepth.plan.stages imports this
module). Each rule: docs/workflow.md, "Machine rules"."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

MAX_WORKERS = 8  # data-loading processes at most (more only wait for the GPU)
MIN_BATCH = 8  # a batch is never halved below this
MEMORY_SHARE = 0.6  # of the device's memory that training may plan to use (the rest: allocator, cuDNN)


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

    from maskdepth.core.device import cpu_has_fast_bf16, cpu_info, resolve_device

    dev = resolve_device(device).device
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        return Machine("cuda", props.name, cpus, (props.major, props.minor), round(props.total_memory / 2**30, 1),
                       cpu_has_fast_bf16())
    import platform

    return Machine(dev.type, cpu_info()[0] or platform.processor() or platform.machine(), cpus, None, None,
                   cpu_has_fast_bf16())


# -- the rules -------------------------------------------------------------------------------
def precision_for(machine: Machine) -> tuple[str, str]:
    """(what autocast runs in: "bf16" | "float16" | "float32" | "float32 or bf16", why)."""
    if machine.device == "cuda":
        import torch

        from maskdepth.core.device import cuda_autocast_dtype

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
    from maskdepth.models.budget import memory_limit

    return memory_limit()


def fit_batch(batch: int, lr: float, footprint, machine: Machine) -> tuple[int, float]:
    """The stage's batch where it fits the machine's memory (`maskdepth.models.budget` estimate), else
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
    """Memory of the model `params` describe (`maskdepth.models.budget.footprint`, on the meta device)."""
    from maskdepth.models import model_entry
    from maskdepth.models.budget import footprint

    model = params.get("model", "joint")
    kwargs = model_entry(model).options_for(params.get("model_kwargs"), params.get("task", "joint"))
    in_channels = 6 if params.get("input_mode") == "bg_fg_bg" else 3
    return footprint(model, in_channels, kwargs, int(params.get("size", 64)))
