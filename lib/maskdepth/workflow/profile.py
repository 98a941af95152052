"""What this machine will do with a stage, before it starts: `maskdepth doctor`.

The rules (precision, workers, batch with lr, pinned memory) live in `maskdepth.plan.machine`.

`machine_profile()` says it in a line (the set-up cell prints it); `estimate_epochs` times 20
optimizer steps of the stages' model and scales them to one epoch of each stage.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from maskdepth.plan.machine import Machine, current_machine, precision_for, workers_for

TIMING_STEPS = 20


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
    from maskdepth.plan.stages import STAGES, stage_defaults

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

    from maskdepth.core.device import resolve_device
    from maskdepth.models import create_model, model_entry
    from maskdepth.training.config import TrainConfig

    names = TrainConfig.__dataclass_fields__
    cfg = TrainConfig.from_mapping({k: v for k, v in params.items() if k in names and k != "weights"}, strict=False)
    dev = resolve_device(device)
    kwargs = model_entry(cfg.model).options_for({k: v for k, v in cfg.model_kwargs.items() if k != "weights"},
                                                cfg.task)
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
    from maskdepth.plan.stages import stage_defaults

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
