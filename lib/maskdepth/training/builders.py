"""The trainer's building blocks, each usable alone: the memory check before anything is allocated,
the model, the data loaders (seeded, sharded under DDP) and one evaluation of a model on a loader.
"""

from __future__ import annotations

import torch
from torch import nn

from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.dataset import open_split
from maskdepth.evaluation.catalogue import json_ready
from maskdepth.evaluation.loop import run_split
from maskdepth.plan.stages import VAL_SPLITS
from maskdepth.training.config import TrainConfig
from maskdepth.training.rng import SeededSampler, SeededSamples


# -- building blocks -------------------------------------------------------------------
def check_memory(cfg: TrainConfig) -> None:
    """Refuse, before anything is allocated, a model that training at cfg.size and cfg.batch_size
    would not fit in the memory limit (`maskdepth.models.budget`; e.g. a huge base_channels)."""
    from maskdepth.models import model_entry
    from maskdepth.models.budget import check_model

    kwargs = model_entry(cfg.model).options_for(cfg.model_kwargs, cfg.task)
    try:
        check_model(cfg.model, cfg.in_channels, kwargs, cfg.size, batch=cfg.batch_size, training=True,
                    source="model_kwargs")
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, MaskdepthError):
            raise
        raise MaskdepthError(f"model {cfg.model} with model_kwargs {kwargs}: cannot be built "
                             f"({type(exc).__name__}: {exc})") from None


def build_model(cfg: TrainConfig) -> nn.Module:
    """The config's model; a single-task model (registry: `task_option`) is built for cfg.task."""
    from maskdepth.models import create_model, model_entry

    kwargs = model_entry(cfg.model).options_for(cfg.model_kwargs, cfg.task)
    if cfg.weights:
        kwargs["weights"] = cfg.weights
    return create_model(cfg.model, in_channels=cfg.in_channels, **kwargs)


def make_loader(dataset, cfg: TrainConfig, *, train: bool, pin_memory: bool, world: int = 1, rank: int = 0,
                generator: torch.Generator | None = None):
    """DataLoader for a split. The shuffle `generator` is re-seeded by the trainer every epoch; a
    training sample's augmentation draws from its own seed (`SeededSampler`), so the same seed
    gives the same batches with any number of workers and after a resume."""
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    sampler = None
    if train:
        if world > 1:
            base = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                      drop_last=True)
        else:
            base = RandomSampler(dataset, generator=generator)
        sampler = SeededSampler(base, generator)
    batch = cfg.batch_size if train else cfg.val_batch_size
    return DataLoader(
        SeededSamples(dataset) if train else dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=pin_memory,
        drop_last=train and len(dataset) // max(world, 1) > batch,
        persistent_workers=cfg.workers > 0,
        # The workers' own base seed is unused (every sample seeds itself): a private generator keeps
        # its draw, made whenever workers start, out of the shuffle's and the trainer's streams.
        generator=torch.Generator().manual_seed(0) if train else None,
    )


def build_val_sets(data: str, size: int, seed: int) -> tuple[dict, dict[str, int]]:
    """({split: dataset} for every validation split with samples, {split: sample count} for all)."""
    sets = {s: open_split(data, s, size, seed) for s in VAL_SPLITS}
    return {s: ds for s, ds in sets.items() if ds is not None}, {s: len(ds) if ds else 0 for s, ds in sets.items()}


def evaluate(model: nn.Module, loader, criterion, cfg: TrainConfig, device_info) -> dict:
    """Loss and dataset-accumulated metrics of `model` over `loader` (`evaluation.run_split`, the
    loop `validate` runs too). Losses are floats (NaN stays NaN, for the divergence check);
    metrics that are undefined on this data (an empty object-size bin, no image to judge the
    ordering on) are None."""
    run = run_split(model, loader, tasks=cfg.tasks, in_channels=cfg.in_channels, device_info=device_info,
                    channels_last=cfg.channels_last, criterion=criterion)
    return {**run.losses, **json_ready(run.metrics())}
