"""Figure 6: on a GPU, the full stage's training step with AMP, and a 400k-sample epoch estimate.

Only when `torch.cuda.is_available()`; otherwise the figure is skipped and says so.
model    the default model's training step at the full stage's batch (256) on a batch already
         on the GPU, with the trainer's batched augmentation (zoom, photometric) applied on the
         GPU first, channels_last, float16 autocast with a GradScaler (what `maskdepth.training.trainer`
         does on CUDA)
loader   our DataLoader over the full train split with the full stage's worker count,
         pinned memory, as the full run uses it (composition and per-sample flips in the workers)
epoch    400k / min(model, loader) samples/s: whichever is slower bounds the epoch
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.report import fmt_rate, fmt_seconds
from bench.settings import Settings, cpu_cores
from bench.steps import batches_forever, consume, default_config, default_rig, fixed_batch, trainer_augment
from bench.timing import measure_rate

FULL_TRAIN = 400_000


def run(settings: Settings, workdir: Path) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "skipped: no GPU (torch.cuda.is_available() is False)"}
    return epoch_estimate(settings, "cuda")


def epoch_estimate(settings: Settings, device: str) -> dict:
    """The figure on `device` ("cuda"; "cpu" only to try the code: bf16 autocast, no pinned memory)."""
    from maskdepth.core.device import describe
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.plan.stages import get_stage
    from maskdepth.training.builders import make_loader
    from maskdepth.training.config import TrainConfig

    defaults = get_stage("full").train_defaults
    batch = settings.gpu_batch
    train_set = build_dataset("full", "train", size=settings.size, augment=True)
    cuda = device.startswith("cuda")
    cfg = default_config("full")
    rig = default_rig(device=device, stage="full", autocast="default" if cuda else "bf16")
    data = fixed_batch(train_set, batch, device=device)
    steps = settings.gpu_steps
    model = measure_rate(lambda: sum(rig.step(trainer_augment(data, cfg)) for _ in range(steps)),
                         repeats=settings.repeats, warmup=max(1, settings.warmup), cuda=cuda)

    workers = min(int(defaults.get("workers", 8)), cpu_cores())
    loader = make_loader(train_set, TrainConfig(batch_size=batch, workers=workers), train=True, pin_memory=cuda,
                         generator=torch.Generator().manual_seed(0))
    batches = batches_forever(loader)
    n_batches = max(4, steps)
    data_rate = measure_rate(lambda: consume(batches, n_batches), repeats=settings.repeats, warmup=1)
    bound = min(model.median, data_rate.median)
    epoch_s = FULL_TRAIN / bound
    limiter = "model" if model.median <= data_rate.median else "loader"
    return {
        "gpu": describe().get("gpu") if cuda else None,
        "batch_size": batch,
        "amp": "float16 autocast + GradScaler" if cuda else "bf16 autocast",
        "model": "default model, channels_last, batched augmentation on the device",
        "model_samples_per_s": model.to_dict(),
        "loader_workers": workers,
        "loader_samples_per_s": data_rate.to_dict(),
        "epoch_400k_s": epoch_s,
        "limited_by": limiter,
        "table": [
            ["default training step, AMP", fmt_rate(model.median),
             f"batch {batch}, data on the GPU, batched augmentation there"],
            ["loader", fmt_rate(data_rate.median), f"{workers} workers, pinned memory"],
            ["400k-sample epoch (estimate)", fmt_seconds(epoch_s), f"limited by the {limiter}"],
        ],
    }
