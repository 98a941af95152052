"""Random number generators: seeding, and their whole state for exact resume.

Every epoch starts by re-seeding all RNGs from (seed, epoch) (`epoch_seed`), and a checkpoint is
written only at epoch boundaries, so a run killed at any point and resumed from last.pt repeats
the interrupted epoch bit for bit (on CPU).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % 2**31


def rng_state() -> dict:
    """All RNG states as tensors and plain data (checkpoints are read with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- per-sample seeds: augmentation that does not depend on loader workers ----------------------
def sample_seed(base: int, index: int) -> int:
    """The seed of sample `index` in an epoch whose sampler drew `base`."""
    return (base + 0x9E3779B97F4A7C15 * (index + 1)) % 2**63


class SeededSampler(torch.utils.data.Sampler):
    """Yields (index, seed) pairs: the indices of `base` (a RandomSampler or DistributedSampler),
    each with its own seed from one draw of `generator` per epoch (the trainer re-seeds it from
    (seed, epoch)). A sample's random flips then depend on the seed and epoch only, not on which
    loader worker made it, how many there are, or how long they have lived: persistent workers
    would otherwise carry their RNG from epoch to epoch, and a resumed run's fresh ones would not."""

    def __init__(self, base, generator: torch.Generator | None = None):
        self.base = base
        self.generator = generator

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self):
        base = int(torch.randint(0, 2**62, (), generator=self.generator))
        for index in self.base:
            yield index, sample_seed(base, int(index))


class SeededSamples(torch.utils.data.Dataset):
    """A dataset read with (index, seed) keys from `SeededSampler`: torch's CPU generator, which
    torchvision's transforms (the flips) draw from, is seeded with the sample's seed while it is
    made and restored afterwards (with no workers the loader runs in the trainer's process, whose
    stream must not depend on the data). Only the CPU generator is seeded: `torch.manual_seed`
    would seed every device as well, far slower per sample."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(saved)
