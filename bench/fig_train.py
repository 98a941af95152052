"""Figure 1: training throughput, ours against the capstone's way, same data, same 64x64, same threads.

capstone  two `resnet_unet` networks (mask, depth) fed by a DataLoader that opens JPEG/PNG files
          with PIL for every sample (`bench.capstone_way`)
ours      the default recipe's model (`joint` with the 1k stage's model_kwargs, channels_last, bf16
          autocast where the trainer's timing picks it) through `maskdepth.training.trainer.Trainer` (our Dataset
          composing samples on the fly, flips, batched augmentation, DataLoader, AdamW, OneCycle)
lean      one `lean_unet` (mask) through the same Trainer, for reference

Samples/s are medians of interleaved repeats; the headline is ratios.joint_vs_seed_train.
What users wait for, the time to reach a quality, is figure 7 (`fig_quality.py`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.capstone_way import CapstoneFileDataset, CapstoneTrainer, write_capstone_folder
from bench.report import fmt_rate, fmt_ratio
from bench.settings import Settings
from bench.steps import LEAN, ProductTrainer, describe_default, warm
from bench.timing import compare_rates

GOAL = 10.0  # ours >= 10x the capstone's way (issue 10)


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.datasets.dataset import build_dataset
    from maskdepth.models import forward_gflops
    from maskdepth.plan.stages import LEAN_RECIPE

    torch.set_num_threads(settings.threads)
    batch = settings.batch
    train_set = build_dataset("1k", "train", size=settings.size)
    n_files = max(4 * batch, (settings.warmup + settings.repeats) * settings.seed_steps * batch)
    folder = write_capstone_folder(train_set, n_files, workdir / "seed_files")
    capstone = CapstoneTrainer(CapstoneFileDataset(folder), batch)
    ours = ProductTrainer.default(out_dir=workdir / "run_joint", batch_size=batch)
    previous = ProductTrainer.default(out_dir=workdir / "run_previous", batch_size=batch, **LEAN_RECIPE)
    lean = ProductTrainer(*LEAN, batch_size=batch, out_dir=workdir / "run_lean")
    for product in (ours, previous, lean):
        warm(product.trainer.train_set)  # steady state: epoch >= 2 (rendered objects cached)
    rates = compare_rates(
        {
            "seed_two_resnet_unets": lambda: capstone.run_steps(settings.seed_steps),
            "joint": lambda: ours.run_steps(settings.steps),
            "previous_default": lambda: previous.run_steps(settings.steps),
            "lean_unet": lambda: lean.run_steps(settings.steps),
        },
        repeats=settings.repeats,
        warmup=settings.warmup,
    )
    seed_rate, joint_rate = rates["seed_two_resnet_unets"].median, rates["joint"].median
    ratio = joint_rate / seed_rate
    gflops = {name: forward_gflops(product.trainer.model, settings.size)
              for name, product in (("joint", ours), ("previous_default", previous))}
    gflops["seed_two_resnet_unets"] = sum(forward_gflops(m, settings.size) for m in capstone.models)
    result = {
        "batch_size": batch,
        "threads": settings.threads,
        "ours": describe_default(),
        "samples_per_s": {name: rate.to_dict() for name, rate in rates.items()},
        "ratio": ratio,
        "forward_gflops_per_sample": gflops,
        "flop_ratio_seed_over_joint": gflops["seed_two_resnet_unets"] / gflops["joint"],
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "table": [
            ["capstone: 2x resnet_unet, PIL files", fmt_rate(seed_rate), f"batch {batch}"],
            ["ours: default recipe, on-the-fly data", fmt_rate(joint_rate),
             f"maskdepth.training.trainer.Trainer: {describe_default()}"],
            ["previous default: lean encoder, random init", fmt_rate(rates["previous_default"].median),
             f"{gflops['previous_default']:.3g} vs {gflops['joint']:.3g} GFLOP fwd/sample (previous vs default)"],
            ["lean_unet (one task), reference", fmt_rate(rates["lean_unet"].median), ""],
            ["**joint / capstone**", fmt_ratio(ratio), f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'missed'}; "
             f"FLOP ratio capstone / joint {gflops['seed_two_resnet_unets'] / gflops['joint']:.1f}x (samples/s ratio "
             "beyond it is the data path and the loop)"],
        ],
    }
    return result
