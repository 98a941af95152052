"""Figure 2: our data path alone against the default training step alone, and a GPU feed estimate.

Each loader is the trainer's DataLoader (`make_loader`: shuffled rows, per-sample flips with
their own seeds, collation) followed by the trainer's batched augmentation on the batch
(channels_last, zoom, photometric: `bench.steps.trainer_augment`), workers=0, i.e. in the
training process, against the same training step:

full, store   the full stage's train split (400k rows) in the trainer's shuffled order, objects
              read from the stage's packed object store (`data/objects.py`), as `maskdepth run
              --stage full` composes. Only a bounded number of batches is drawn (warm-up +
              repeats), all from one epoch, so no row repeats and nothing is served from the
              composer's object cache. Without a full store in the cache (`maskdepth data
              build --data full --objects`, or figure 5, builds it) a store of exactly the
              rows drawn here is traced first into the work folder (said in the table)
full, traced  the same loader with no store: every object is ray-traced as it is composed
1k, cached    the 1k train split after every sample was composed once (rendered objects in the
              composer's cache, as from epoch 2 of a 1k run)
model         the default training step (the stage's default model, channels_last, bf16 autocast
              where the trainer's timing picks it: `bench.steps.default_rig`) on a batch in memory
plain         the 1k cached loader without any augmentation (composition + collation)
colour        the old per-sample path (transforms.v2 ColorJitter 0.2 per sample, now only on request:
              `build_augment(colour=0.2)`), what the batched augmentation replaced
packed        the materialized, memory-mapped 1k dataset's loader with the same augmentation,
              where this maskdepth has one
capstone      the capstone's PIL file loader, for reference

The headline, ratios.loader_over_model (goal >= 10: the loader is never the bottleneck), is the
full stage from its object store over the model step; the traced and the 1k cached ratios are
beside it. With workers=0 the loader runs inside the training step, so `loader_share_of_step`
is the fraction of a training step spent on data: 1 / (1 + ratio).

GPU feed estimate (`gpu_feed_estimate`, until figure 6 measures a GPU): one DataLoader worker
is one process on one core, so the full stage's loader (from its store) with one torch thread
is measured here and multiplied by the full stage's worker count (linear scaling assumed:
workers share nothing). Against it, the full-stage training step's rate on an H100 from FLOPs:
the default model's forward + backward FLOP per sample (torch.utils.flop_counter, one real step)
at `H100_BF16_TFLOPS` x `ASSUMED_UTILISATION`. On a GPU the batched augmentation runs on the
GPU, not in the workers, so the per-worker rate with it (measured here on a CPU core) is a lower
bound of what a worker feeds; the rate without it is listed too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from bench.capstone_way import CapstoneFileDataset, capstone_loader, write_capstone_folder
from bench.packed import materialize_packed, packed_dataset, packed_unavailable
from bench.report import fmt_percent, fmt_rate, fmt_ratio
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


def full_stage_sets(settings: Settings, cfg, need: int, workdir: Path, stage: str = "full"):
    """The full stage's (`stage`'s) train split three times (store + augmentation, traced + augmentation,
    store without augmentation), and what the store is: the stage's own, or one traced here of
    the first `need` rows of the trainer's shuffled order when the cache holds none."""
    from maskdepth.datasets.dataset import build_dataset

    store_set = build_dataset(stage, "train", size=settings.size, augment=cfg.augment)
    traced_set = build_dataset(stage, "train", size=settings.size, augment=cfg.augment)
    plain_set = build_dataset(stage, "train", size=settings.size)
    traced_set.composer.store = None  # every object ray-traced as it is composed
    store = store_set.composer.store
    if store is not None:
        info = {"store": f"the {stage} stage's object store", "objects": int(len(store.keys)), "folder": str(store.folder)}
    else:
        store, info = rows_store(store_set, first_rows(store_set, settings.batch, need), workdir / "objects_drawn")
    store_set.composer.store = plain_set.composer.store = store
    return store_set, traced_set, plain_set, info


def first_rows(dataset, batch: int, need: int) -> list[int]:
    """The first `need` dataset indices the trainer's loader (`loader_of`) draws: its sampler with
    a generator seeded alike, iterated without composing anything."""
    from itertools import islice

    return [int(index) for index, _ in islice(iter(loader_of(dataset, batch).sampler), need)]


def rows_store(dataset, indices: list[int], folder: Path):
    """An object store of the rows `indices` of `dataset` only, traced into `folder` (the full
    stage has no store in this cache); (store, what it is)."""
    import shutil
    import time

    from maskdepth.world.manifest import Manifest
    from maskdepth.world.objects import ObjectStore, build_store

    rows = dataset.rows[np.asarray(indices, dtype=np.int64)]
    manifest = dataset.manifest
    subset = Manifest(manifest.stage, manifest.seed, {k: v[rows] for k, v in manifest.columns.items()})
    start = time.perf_counter()
    built = build_store(dataset.source_set, manifest.stage, subset, workers=max(1, torch.get_num_threads()))
    seconds = time.perf_counter() - start
    shutil.rmtree(folder, ignore_errors=True)
    shutil.move(built["folder"], folder)  # out of the cache: it covers these rows only
    store = ObjectStore(folder, dataset.source_set.spec.n_fg_total)
    return store, {"store": f"traced here for the {len(indices)} rows drawn (no full store in the cache: "
                            "`maskdepth data build --data full --objects` builds it)",
                   "objects": int(len(store.keys)), "trace_s": seconds}


def loader_of(dataset, batch: int):
    """The trainer's training loader over `dataset` (shuffle generator seeded 0, workers 0)."""
    from maskdepth.training.builders import make_loader
    from maskdepth.training.config import TrainConfig

    return make_loader(dataset, TrainConfig(batch_size=batch), train=True, pin_memory=False,
                       generator=torch.Generator().manual_seed(0))


def one_epoch(loader, what: str):
    """Batches of `loader`'s first epoch only; running out is an error (rows would repeat)."""
    yield from loader
    raise RuntimeError(f"{what}: the first epoch ran out; the figure draws too many batches")


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.augment.transforms import build_augment
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.plan.stages import get_stage

    torch.set_num_threads(settings.threads)
    batch, n_batches = settings.batch, settings.loader_batches
    cfg = default_config("1k", batch_size=batch)
    rounds = settings.warmup + max(1, settings.repeats)
    # Full-stage batches drawn from the store loaders: this figure's rounds, then as many at one thread.
    need = 2 * rounds * n_batches * batch

    train_set = build_dataset("1k", "train", size=settings.size, augment=cfg.augment)
    ours = augmented(batches_forever(loader_of(train_set, batch)), cfg)
    plain_set = build_dataset("1k", "train", size=settings.size)
    plain = batches_forever(loader_of(plain_set, batch))
    colour_set = build_dataset("1k", "train", size=settings.size, augment=build_augment(colour=OLD_COLOUR))
    for dataset in (train_set, plain_set, colour_set):
        warm(dataset)  # steady state: epoch >= 2 (of the 1k stage)
    colour = batches_forever(loader_of(colour_set, batch))
    store_set, traced_set, full_plain_set, store_info = full_stage_sets(settings, cfg, need, workdir)
    full_store = augmented(one_epoch(loader_of(store_set, batch), "full stage, store"), cfg)
    full_traced = augmented(one_epoch(loader_of(traced_set, batch), "full stage, traced"), cfg)
    full_plain = one_epoch(loader_of(full_plain_set, batch), "full stage, store, no augmentation")
    folder = write_capstone_folder(plain_set, 4 * batch, workdir / "seed_files")
    capstone = batches_forever(capstone_loader(CapstoneFileDataset(folder), batch))
    rig = default_rig()
    data = fixed_batch(plain_set, batch, channels_last=cfg.channels_last)
    model_steps = settings.steps

    def model_step() -> int:
        return sum(rig.step(data) for _ in range(model_steps))

    cases = {
        "loader_full_object_store": lambda: consume(full_store, n_batches),
        "model_step_default": model_step,
        "loader_full_traced": lambda: consume(full_traced, n_batches),
        "loader_on_the_fly": lambda: consume(ours, n_batches),
        "loader_on_the_fly_no_augment": lambda: consume(plain, n_batches),
        "loader_per_sample_colour_jitter": lambda: consume(colour, max(2, n_batches // 4)),
        "loader_seed_pil": lambda: consume(capstone, n_batches),
    }
    why_not = packed_unavailable()
    if not why_not:
        packed = augmented(batches_forever(packed_loader(settings, workdir)), cfg)
        cases["loader_packed"] = lambda: consume(packed, n_batches)
    rates = compare_rates(cases, repeats=settings.repeats, warmup=settings.warmup)
    model_rate = rates["model_step_default"].median
    store_rate, traced_rate = rates["loader_full_object_store"].median, rates["loader_full_traced"].median
    cached_rate = rates["loader_on_the_fly"].median
    ratio = store_rate / model_rate
    ratios = {"full_object_store": ratio, "full_traced": traced_rate / model_rate, "1k_cached": cached_rate / model_rate}

    # One DataLoader worker = one process with one thread: the full stage's loader at 1 torch thread.
    full = get_stage("full").train_defaults
    workers = int(full.get("workers", 8))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = compare_rates({"with": lambda: consume(full_store, n_batches),
                             "without": lambda: consume(full_plain, n_batches)},
                            repeats=settings.repeats, warmup=settings.warmup)
    finally:
        torch.set_num_threads(threads)
    gflops = step_gflops_per_sample(default_rig(autocast="off"), data)
    feed = gpu_feed_estimate(one["with"].median, one["without"].median, gflops, workers=workers,
                             batch=int(full.get("batch_size", 256)))
    feed["per_worker_rates"] = {name: rate.to_dict() for name, rate in one.items()}
    feed["data"] = ("the full stage's train split in the trainer's shuffled order, objects from the object store "
                    f"({store_info['store']}), each row once")
    drawn = rounds * n_batches * batch

    def vs_model(name: str) -> str:
        return f"{fmt_ratio(ratios[name])} the step"

    result = {
        "batch_size": batch,
        "workers": 0,
        "model": describe_default(),
        "augmentation": {"per_sample": "horizontal flip (transforms.v2)", "batched": "zoom (off by default: "
                         f"zoom={cfg.zoom}), photometric strength {cfg.photometric}"},
        "full_stage": {"rows": len(store_set), "samples_drawn_per_loader": drawn,
                       "samples_drawn_from_the_store_in_all": 2 * drawn, **store_info},
        "samples_per_s": {name: rate.to_dict() for name, rate in rates.items()},
        "ratio": ratio,
        "ratio_of": "loader_full_object_store / model_step_default",
        "ratios_over_model": ratios,
        "loader_share_of_step": 1.0 / (1.0 + ratio),
        "loader_share_of_step_full_traced": 1.0 / (1.0 + ratios["full_traced"]),
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "packed": why_not or "measured",
        "gpu_feed_estimate": feed,
        "table": [
            ["loader, full stage, object store", fmt_rate(store_rate),
             f"{vs_model('full_object_store')}; batch {batch}, shuffled 400k rows, {drawn} drawn (each once), "
             f"flips + batched zoom/photometric, workers 0; {store_info['store']}"],
            ["loader, full stage, traced (no store)", fmt_rate(traced_rate),
             f"{vs_model('full_traced')}; same rows, every object ray-traced; data would be "
             f"{fmt_percent(1.0 / (1.0 + ratios['full_traced']))} of a step"],
            ["loader, 1k stage, objects cached", fmt_rate(cached_rate),
             f"{vs_model('1k_cached')}; epoch >= 2 of the 1k split, rendered objects in the composer's cache"],
            ["loader, 1k cached, no augmentation", fmt_rate(rates["loader_on_the_fly_no_augment"].median),
             "what the augmentation costs"],
            ["loader, per-sample ColorJitter (old path)", fmt_rate(rates["loader_per_sample_colour_jitter"].median),
             f"transforms.v2, colour {OLD_COLOUR}: only on request now"],
            ["loader, packed (memory-mapped)",
             fmt_rate(rates["loader_packed"].median) if not why_not else "n/a",
             why_not or f"1k materialized, batch {batch}, same augmentation, workers 0"],
            ["loader, capstone's PIL files", fmt_rate(rates["loader_seed_pil"].median), "reference"],
            ["default training step alone", fmt_rate(model_rate), f"{describe_default()}; fixed batch in memory"],
            ["**loader / model (full stage, store)**", fmt_ratio(ratio),
             f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'missed'}; "
             f"data is {fmt_percent(1.0 / (1.0 + ratio))} of a step"],
            ["GPU feed: 1 worker (1 thread), full stage, store", fmt_rate(feed["per_worker_samples_per_s"]),
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
    from maskdepth.training.builders import make_loader
    from maskdepth.training.config import TrainConfig

    folder = workdir / "packed_1k"
    materialize_packed("1k", folder, settings.size)
    return make_loader(packed_dataset(folder, "train", augment=True), TrainConfig(batch_size=settings.batch),
                       train=True, pin_memory=False, generator=torch.Generator().manual_seed(0))
