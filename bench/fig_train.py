"""Figure 1: training throughput, ours against the seed's way, same data, same 64x64, same threads.

seed   two `resnet_unet` networks (mask, depth) fed by a DataLoader that opens JPEG/PNG files
       with PIL for every sample (`bench.seed_way`)
ours   the default `joint` model through `maskdepth.train.Trainer` (our Dataset composing
       samples on the fly, augmentation, DataLoader)
lean   one `lean_unet` (mask) through the same Trainer, for reference

Samples/s are medians of interleaved repeats; the headline is ratios.joint_vs_seed_train.
With `--quality`, both sides also train for the same wall-time budget on the 1k stage and
report the validation IoU and delta1 each reached on the unseen split.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.report import fmt_rate, fmt_ratio
from bench.seed_way import SeedFileDataset, SeedTrainer, write_seed_folder
from bench.settings import Settings
from bench.steps import JOINT, LEAN, ProductTrainer, batches_forever, make_rig
from bench.timing import compare_rates

GOAL = 10.0  # ours >= 10x the seed's way (issue 10)


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.data import build_dataset

    torch.set_num_threads(settings.threads)
    batch = settings.batch
    train_set = build_dataset("1k", "train", size=settings.size)
    n_files = max(4 * batch, (settings.warmup + settings.repeats) * settings.seed_steps * batch)
    folder = write_seed_folder(train_set, n_files, workdir / "seed_files")
    seed = SeedTrainer(SeedFileDataset(folder), batch)
    ours = ProductTrainer(*JOINT, batch_size=batch, out_dir=workdir / "run_joint")
    lean = ProductTrainer(*LEAN, batch_size=batch, out_dir=workdir / "run_lean")
    rates = compare_rates(
        {
            "seed_two_resnet_unets": lambda: seed.run_steps(settings.seed_steps),
            "joint": lambda: ours.run_steps(settings.steps),
            "lean_unet": lambda: lean.run_steps(settings.steps),
        },
        repeats=settings.repeats,
        warmup=settings.warmup,
    )
    seed_rate, joint_rate = rates["seed_two_resnet_unets"].median, rates["joint"].median
    ratio = joint_rate / seed_rate
    result = {
        "batch_size": batch,
        "threads": settings.threads,
        "samples_per_s": {name: rate.to_dict() for name, rate in rates.items()},
        "ratio": ratio,
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "table": [
            ["seed: 2x resnet_unet, PIL files", fmt_rate(seed_rate), f"batch {batch}"],
            ["ours: joint, on-the-fly data", fmt_rate(joint_rate), "maskdepth.train.Trainer"],
            ["lean_unet (one task), reference", fmt_rate(rates["lean_unet"].median), ""],
            ["**joint / seed**", fmt_ratio(ratio), f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'missed'}"],
        ],
    }
    if settings.quality:
        quality = equal_time_quality(settings, workdir)
        result["quality"] = quality
        for side in ("seed", "joint"):
            q = quality[side]
            result["table"].append([
                f"{side}: quality after {quality['budget_s']:g} s",
                f"IoU {q['unseen']['iou']:.3f}, delta1 {q['unseen']['delta1']:.3f}",
                f"{q['samples']} samples ({q['epochs']:.2f} epochs of 1k) in {q['train_s']:.0f} s; 1k/unseen",
            ])
    return result


# -- equal wall time, then validation quality ------------------------------------------------
def _train_for(seconds: float, step) -> tuple[int, int, float]:
    """Call `step()` (returns samples) until `seconds` of wall time are spent: (steps, samples,
    seconds actually spent; the last step may run past the budget)."""
    steps = samples = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        samples += step()
        steps += 1
    return steps, samples, time.perf_counter() - start


@torch.no_grad()
def _validate(models: list[torch.nn.Module], dataset, batch_size: int = 64) -> dict:
    """Dataset-wide IoU and delta1 of the union of the models' outputs (one joint, or mask + depth)."""
    from torch.utils.data import DataLoader

    from maskdepth.metrics import DepthMeter, MaskMeter

    for model in models:
        model.eval()
    mask_meter, depth_meter = MaskMeter(), DepthMeter()
    for batch in DataLoader(dataset, batch_size=batch_size):
        pred: dict = {}
        for model in models:
            pred.update(model(batch["image"]))
        mask_meter.update(pred["mask"], batch["mask"])
        depth_meter.update(pred["depth"], batch["depth"])
    for model in models:
        model.train()
    return {**mask_meter.compute(), **depth_meter.compute()}


def equal_time_quality(settings: Settings, workdir: Path) -> dict:
    """Both sides train `quality_seconds` on the 1k train split (constant lr 3e-3, AdamW, batch
    32), then report the unseen-split metrics. Our side keeps its augmentation; the seed's
    files are the unaugmented training samples, as the seed had them."""
    from maskdepth.data import build_dataset
    from maskdepth.train import TrainConfig, make_loader

    torch.manual_seed(0)
    batch = 32
    train_plain = build_dataset("1k", "train", size=settings.size)
    unseen = build_dataset("1k", "unseen", size=settings.size)
    folder = write_seed_folder(train_plain, len(train_plain), workdir / "seed_files_1k")
    budget = settings.quality_seconds

    seed = SeedTrainer(SeedFileDataset(folder), batch)
    seed_run = _train_for(budget, lambda: seed.run_steps(1))
    seed_metrics = _validate(seed.models, unseen)

    rig = make_rig(*JOINT)
    train_aug = build_dataset("1k", "train", size=settings.size, augment=True)
    loader = make_loader(train_aug, TrainConfig(batch_size=batch), train=True, pin_memory=False,
                         generator=torch.Generator().manual_seed(0))
    batches = batches_forever(loader)
    ours_run = _train_for(budget, lambda: rig.step(next(batches)))
    ours_metrics = _validate([rig.model], unseen)

    def side(run, metrics):
        steps, samples, seconds = run
        return {"steps": steps, "samples": samples, "train_s": seconds, "epochs": samples / len(train_plain),
                "unseen": {k: metrics[k] for k in ("iou", "dice", "delta1", "abs_rel", "rmse")}}

    return {
        "budget_s": budget,
        "batch_size": batch,
        "lr": 3e-3,
        "split": "1k/unseen",
        "seed": side(seed_run, seed_metrics),
        "joint": side(ours_run, ours_metrics),
    }
