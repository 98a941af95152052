"""The capstone's way of training, rebuilt to compare against: files on disk, PIL, two networks.

The capstone stored every sample as files (fg_bg JPEG, mask PNG, depth 16-bit PNG), opened them
with PIL in the DataLoader for every sample, and trained one ResNet U-Net for the mask and
another for the depth. We write the same kind of folder from our dataset (at 64x64, so the
capstone pays no resize) and train both networks on the same batches, each with its own loss
and AdamW, exactly as two separate runs would do per sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.steps import RESNET, StepRig, batches_forever, make_rig
from maskdepth.core.depth import depth_from_png16, depth_to_png16

SUBFOLDERS = {"image": ("fg_bg", ".jpg"), "mask": ("mask", ".png"), "depth": ("depth", ".png")}
JPEG_QUALITY = 95


def write_capstone_folder(dataset, count: int, folder: Path) -> Path:
    """Write samples 0..count-1 of `dataset` as fg_bg JPEG, mask PNG and depth 16-bit PNG files."""
    for sub, _ in SUBFOLDERS.values():
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sample = dataset.compose(i % len(dataset))
        name = f"{i:06d}"
        rgb = np.clip(np.rint(sample["image"].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / "fg_bg" / f"{name}.jpg", quality=JPEG_QUALITY)
        Image.fromarray((sample["mask"][0] > 0.5).astype(np.uint8) * 255).save(folder / "mask" / f"{name}.png")
        Image.fromarray(depth_to_png16(sample["depth"][0])).save(folder / "depth" / f"{name}.png")
    return folder


class CapstoneFileDataset(Dataset):
    """Opens the three files of a sample with PIL on every access, like the capstone's loader."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.names = sorted(p.stem for p in (self.folder / "fg_bg").glob("*.jpg"))
        if not self.names:
            raise ValueError(f"{self.folder / 'fg_bg'}: no .jpg files")

    def __len__(self) -> int:
        return len(self.names)

    def _open(self, key: str, i: int) -> Image.Image:
        sub, ext = SUBFOLDERS[key]
        return Image.open(self.folder / sub / f"{self.names[i]}{ext}")

    def __getitem__(self, i: int) -> dict:
        rgb = np.asarray(self._open("image", i).convert("RGB"), dtype=np.float32) / 255.0
        mask = np.asarray(self._open("mask", i).convert("L")) > 127
        depth = depth_from_png16(np.asarray(self._open("depth", i)))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
            "mask": torch.from_numpy(mask.astype(np.float32)[None]),
            "depth": torch.from_numpy(depth[None]),
        }


def capstone_loader(dataset: CapstoneFileDataset, batch_size: int, seed: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


class CapstoneTrainer:
    """Two `resnet_unet` networks (mask, depth), each with its own loss and optimizer, same batches."""

    def __init__(self, dataset: CapstoneFileDataset, batch_size: int, *, lr: float = 3e-3, seed: int = 0):
        self.rigs: dict[str, StepRig] = {task: make_rig(RESNET[0], task, lr=lr, seed=seed)
                                         for task in ("mask", "depth")}
        self.batches = batches_forever(capstone_loader(dataset, batch_size, seed))

    @property
    def models(self) -> list[torch.nn.Module]:
        return [rig.model for rig in self.rigs.values()]

    def run_steps(self, n: int) -> int:
        """`n` batches, each one step of both networks; returns the samples trained on."""
        samples = 0
        for _ in range(n):
            batch = next(self.batches)
            for rig in self.rigs.values():
                rig.step(batch)
            samples += int(batch["image"].shape[0])
        return samples
