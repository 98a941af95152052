"""Figure 2: our data path alone against the model's training step alone.

loader   our DataLoader over the 1k train split, as training uses it (on-the-fly composition,
         augmentation, collate; workers=0, i.e. in the training process)
packed   the materialized, memory-mapped dataset's loader, where this maskdepth has one
model    the default joint model's training step on a batch already in memory
seed     the seed's PIL file loader, for reference
plain    our loader without augmentation: how much of the loader's time augmentation takes

The headline is ratios.loader_over_model (goal >= 5: the loader is never the bottleneck).
With workers=0 the loader runs inside the training step, so `loader_share_of_step` is the
fraction of a training step spent on data: 1 / (1 + ratio).
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.packed import materialize_packed, packed_dataset, packed_unavailable
from bench.report import fmt_percent, fmt_rate, fmt_ratio
from bench.seed_way import SeedFileDataset, seed_loader, write_seed_folder
from bench.settings import Settings
from bench.steps import JOINT, batches_forever, consume, fixed_batch, make_rig
from bench.timing import compare_rates

GOAL = 5.0


def run(settings: Settings, workdir: Path) -> dict:
    from maskdepth.data import build_dataset
    from maskdepth.train import TrainConfig, make_loader

    torch.set_num_threads(settings.threads)
    batch, n_batches = settings.batch, settings.loader_batches
    train_set = build_dataset("1k", "train", size=settings.size, augment=True)
    loader = make_loader(train_set, TrainConfig(batch_size=batch), train=True, pin_memory=False,
                         generator=torch.Generator().manual_seed(0))
    ours = batches_forever(loader)
    plain_set = build_dataset("1k", "train", size=settings.size)
    plain = batches_forever(make_loader(plain_set, TrainConfig(batch_size=batch), train=True, pin_memory=False,
                                        generator=torch.Generator().manual_seed(0)))
    folder = write_seed_folder(plain_set, 4 * batch, workdir / "seed_files")
    seed = batches_forever(seed_loader(SeedFileDataset(folder), batch))
    rig = make_rig(*JOINT)
    data = fixed_batch(train_set, batch)
    model_steps = settings.steps

    def model_step() -> int:
        return sum(rig.step(data) for _ in range(model_steps))

    cases = {
        "loader_on_the_fly": lambda: consume(ours, n_batches),
        "model_step_joint": model_step,
        "loader_on_the_fly_no_augment": lambda: consume(plain, n_batches),
        "loader_seed_pil": lambda: consume(seed, n_batches),
    }
    why_not = packed_unavailable()
    if not why_not:
        packed = batches_forever(packed_loader(settings, workdir))
        cases["loader_packed"] = lambda: consume(packed, n_batches)
    rates = compare_rates(cases, repeats=settings.repeats, warmup=settings.warmup)
    loader_rate, model_rate = rates["loader_on_the_fly"].median, rates["model_step_joint"].median
    ratio = loader_rate / model_rate
    result = {
        "batch_size": batch,
        "workers": 0,
        "samples_per_s": {name: rate.to_dict() for name, rate in rates.items()},
        "ratio": ratio,
        "loader_share_of_step": 1.0 / (1.0 + ratio),
        "goal": GOAL,
        "goal_met": ratio >= GOAL,
        "packed": why_not or "measured",
        "table": [
            ["loader, on-the-fly composition", fmt_rate(loader_rate), f"batch {batch}, augment, workers 0"],
            ["loader, on the fly, no augmentation", fmt_rate(rates["loader_on_the_fly_no_augment"].median),
             "what the augmentation costs"],
            ["loader, packed (memory-mapped)",
             fmt_rate(rates["loader_packed"].median) if not why_not else "n/a",
             why_not or f"1k materialized, batch {batch}, augment, workers 0"],
            ["loader, seed's PIL files", fmt_rate(rates["loader_seed_pil"].median), "reference"],
            ["model step alone (joint)", fmt_rate(model_rate), "fixed batch in memory"],
            ["**loader / model**", fmt_ratio(ratio),
             f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'missed'}; "
             f"data is {fmt_percent(1.0 / (1.0 + ratio))} of a step"],
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
