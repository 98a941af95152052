"""Figure 2: our data path alone against the default training step alone, and a GPU feed estimate.

Every loader runs in its steady state: each dataset composes all its samples once first
(rendered objects are then in the composer's cache, as from epoch 2 of training on).

loader     our DataLoader over the 1k train split as the trainer uses it: on-the-fly composition,
           per-sample flips, collation, then the trainer's batched augmentation on the batch
           (channels_last, zoom, photometric: `bench.steps.trainer_augment`); workers=0, i.e. in
           the training process
model      the default training step (the stage's default model, channels_last, bf16 autocast
           where the trainer's timing picks it: `bench.steps.default_rig`) on a batch in memory
plain      our loader without any augmentation (composition + collation)
colour     the old per-sample path (transforms.v2 ColorJitter 0.2 per sample, now only on request:
           `build_augment(colour=0.2)`), what the batched augmentation replaced
packed     the materialized, memory-mapped dataset's loader with the same augmentation, where
           this maskdepth has one
seed       the seed's PIL file loader, for reference

The headline is ratios.loader_over_model (goal >= 10: the loader is never the bottleneck).
With workers=0 the loader runs inside the training step, so `loader_share_of_step` is the
fraction of a training step spent on data: 1 / (1 + ratio).

GPU feed estimate (`gpu_feed_estimate`, until figure 6 measures a GPU): one DataLoader worker
is one process on one core, so the loader's samples/s with one torch thread is measured here
and multiplied by the full stage's worker count (linear scaling assumed: workers share
nothing). Against it, the full-stage training step's rate on an H100 from FLOPs: the default
model's forward + backward FLOP per sample (torch.utils.flop_counter, one real step) at
`H100_BF16_TFLOPS` x `ASSUMED_UTILISATION`. On a GPU the batched augmentation runs on the GPU,
not in the workers, so the per-worker rate with it (measured here on a CPU core) is a lower
bound of what a worker feeds; the rate without it is listed too.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from bench.packed import materialize_packed, packed_dataset, packed_unavailable
from bench.report import fmt_percent, fmt_rate, fmt_ratio
from bench.seed_way import SeedFileDataset, seed_loader, write_seed_folder
from bench.settings import Settings
from bench.steps import (
    batches_forever,
    consume,
    default_config,
    default_rig,
    describe_default,
    fixed_batch,
    trainer_augment,
    warm,
)
from bench.timing import compare_rates

GOAL = 10.0
H100_BF16_TFLOPS = 989.0  # H100 SXM dense bf16 tensor-core peak (NVIDIA datasheet; 1,979 is with sparsity)
ASSUMED_UTILISATION = 0.3  # of that peak, for a small conv net at 64x64, batch 256 (stated, not measured)
OLD_COLOUR = 0.2  # the per-sample ColorJitter strength the trainer used before batched augmentation


def augmented(batches, cfg):
    """The batches of a loader with the trainer's batched augmentation applied to each."""
    epoch = 0
    for batch in batches:
        yield trainer_augment(batch, cfg, epoch)


def step_gflops_per_sample(rig, batch: dict, samples: int = 2) -> float:
    """Forward + backward GFLOP per sample of one real training step (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    small = {k: v[:samples] if torch.is_tensor(v) else v for k, v in batch.items()}
    with FlopCounterMode(display=False) as counter:
        rig.step(small)
    return counter.get_total_flops() / samples / 1e9


def gpu_feed_estimate(per_worker: float, per_worker_plain: float, step_gflops: float, *, workers: int,
                      batch: int) -> dict:
    """Samples/s N loader workers feed against the full-stage step rate on an H100, from FLOPs."""
    step_rate = H100_BF16_TFLOPS * 1e12 * ASSUMED_UTILISATION / (step_gflops * 1e9)
    feed = workers * per_worker
    return {
        "workers": workers,
        "scaling": f"measured with 1 worker (one process, 1 torch thread), multiplied by {workers}: linear",
        "per_worker_samples_per_s": per_worker,
        "per_worker_samples_per_s_without_batched_augmentation": per_worker_plain,
        "feed_samples_per_s": feed,
        "h100_bf16_tflops": H100_BF16_TFLOPS,
        "assumed_utilisation": ASSUMED_UTILISATION,
        "train_gflop_per_sample": step_gflops,
        "full_stage_batch": batch,
        "step_samples_per_s": step_rate,
        "step_s": batch / step_rate,
        "step_samples_per_s_at_full_peak": step_rate / ASSUMED_UTILISATION,
        "feed_over_step": feed / step_rate,
        "feed_over_step_augmenting_on_the_gpu": workers * per_worker_plain / step_rate,
        "workers_needed": math.ceil(step_rate / per_worker),
        "workers_needed_augmenting_on_the_gpu": math.ceil(step_rate / per_worker_plain),
        "workers_needed_at_full_peak": math.ceil(step_rate / ASSUMED_UTILISATION / per_worker),
    }


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.data import build_dataset
    from maskdepth.data.transforms import build_augment
    from maskdepth.stages import get_stage
    from maskdepth.train import TrainConfig, make_loader

    torch.set_num_threads(settings.threads)
    batch, n_batches = settings.batch, settings.loader_batches
    cfg = default_config("1k", batch_size=batch)

    def loader_of(dataset):
        return make_loader(dataset, TrainConfig(batch_size=batch), train=True, pin_memory=False,
                           generator=torch.Generator().manual_seed(0))

    train_set = build_dataset("1k", "train", size=settings.size, augment=cfg.augment)
    ours = augmented(batches_forever(loader_of(train_set)), cfg)
    plain_set = build_dataset("1k", "train", size=settings.size)
    plain = batches_forever(loader_of(plain_set))
    colour_set = build_dataset("1k", "train", size=settings.size, augment=build_augment(colour=OLD_COLOUR))
    for dataset in (train_set, plain_set, colour_set):
        warm(dataset)  # steady state: epoch >= 2 of training
    colour = batches_forever(loader_of(colour_set))
    folder = write_seed_folder(plain_set, 4 * batch, workdir / "seed_files")
    seed = batches_forever(seed_loader(SeedFileDataset(folder), batch))
    rig = default_rig()
    data = fixed_batch(plain_set, batch, channels_last=cfg.channels_last)
    model_steps = settings.steps

    def model_step() -> int:
        return sum(rig.step(data) for _ in range(model_steps))

    cases = {
        "loader_on_the_fly": lambda: consume(ours, n_batches),
        "model_step_default": model_step,
        "loader_on_the_fly_no_augment": lambda: consume(plain, n_batches),
        "loader_per_sample_colour_jitter": lambda: consume(colour, max(2, n_batches // 4)),
        "loader_seed_pil": lambda: consume(seed, n_batches),
    }
    why_not = packed_unavailable()
    if not why_not:
        packed = augmented(batches_forever(packed_loader(settings, workdir)), cfg)
        cases["loader_packed"] = lambda: consume(packed, n_batches)
    rates = compare_rates(cases, repeats=settings.repeats, warmup=settings.warmup)
    loader_rate, model_rate = rates["loader_on_the_fly"].median, rates["model_step_default"].median
    ratio = loader_rate / model_rate

    # One DataLoader worker = one process with one thread: the loader alone at 1 torch thread.
    full = get_stage("full").train_defaults
    workers = int(full.get("workers", 8))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = compare_rates({"with": lambda: consume(ours, n_batches), "without": lambda: consume(plain, n_batches)},
                            repeats=settings.repeats, warmup=settings.warmup)
    finally:
        torch.set_num_threads(threads)
    gflops = step_gflops_per_sample(default_rig(autocast="off"), data)
    feed = gpu_feed_estimate(one["with"].median, one["without"].median, gflops, workers=workers,
                             batch=int(full.get("batch_size", 256)))
    feed["per_worker_rates"] = {name: rate.to_dict() for name, rate in one.items()}
    feed["data"] = ("1k train split composed on the fly, rendered objects cached (epoch >= 2); the full stage "
                    "composes from its object store instead (figure 5: about half the 1k cached rate per core)")

    result = {
        "batch_size": batch,
        "workers": 0,
        "model": describe_default(),
        "augmentation": {"per_sample": "horizontal flip (transforms.v2)", "batched": "zoom (off by default: "
                         f"zoom={cfg.zoom}), photometric strength {cfg.photometric}"},
        "samples_per_s": {name: rate.to_dict() for name, rate in rates.items()},
        "ratio": ratio,
        "loader_share_of_step": 1.0 / (1.0 + ratio),
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "packed": why_not or "measured",
        "gpu_feed_estimate": feed,
        "table": [
            ["loader, on-the-fly composition", fmt_rate(loader_rate),
             f"batch {batch}, flips + batched zoom/photometric, workers 0"],
            ["loader, on the fly, no augmentation", fmt_rate(rates["loader_on_the_fly_no_augment"].median),
             "what the augmentation costs"],
            ["loader, per-sample ColorJitter (old path)", fmt_rate(rates["loader_per_sample_colour_jitter"].median),
             f"transforms.v2, colour {OLD_COLOUR}: only on request now"],
            ["loader, packed (memory-mapped)",
             fmt_rate(rates["loader_packed"].median) if not why_not else "n/a",
             why_not or f"1k materialized, batch {batch}, same augmentation, workers 0"],
            ["loader, seed's PIL files", fmt_rate(rates["loader_seed_pil"].median), "reference"],
            ["default training step alone", fmt_rate(model_rate), f"{describe_default()}; fixed batch in memory"],
            ["**loader / model**", fmt_ratio(ratio),
             f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'missed'}; "
             f"data is {fmt_percent(1.0 / (1.0 + ratio))} of a step"],
            ["GPU feed: 1 worker (1 thread)", fmt_rate(feed["per_worker_samples_per_s"]),
             f"with batched augmentation; {fmt_rate(feed['per_worker_samples_per_s_without_batched_augmentation'])} "
             "without (on a GPU it runs there)"],
            [f"GPU feed: {workers} workers vs H100 step", fmt_ratio(feed["feed_over_step"]),
             f"{fmt_rate(feed['feed_samples_per_s'])} (x{workers}, linear) vs {fmt_rate(feed['step_samples_per_s'])}"
             f" = {gflops:.3g} GFLOP/sample at {H100_BF16_TFLOPS:g} TFLOP/s x {ASSUMED_UTILISATION:g}; "
             f"{feed['workers_needed']} workers needed"],
            [f"GPU feed, augmentation on the GPU: {workers} workers vs H100 step",
             fmt_ratio(feed["feed_over_step_augmenting_on_the_gpu"]),
             f"composition + flips only in the workers; {feed['workers_needed_augmenting_on_the_gpu']} workers needed"],
        ],
    }
    return result


def packed_loader(settings: Settings, workdir: Path):
    """Our DataLoader over the 1k train split materialized as packed arrays (written here first)."""
    from maskdepth.train import TrainConfig, make_loader

    folder = workdir / "packed_1k"
    materialize_packed("1k", folder, settings.size)
    return make_loader(packed_dataset(folder, "train", augment=True), TrainConfig(batch_size=settings.batch),
                       train=True, pin_memory=False, generator=torch.Generator().manual_seed(0))
