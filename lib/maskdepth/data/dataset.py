"""The torch Dataset of composed samples, and how a batch becomes the network input.

`build_dataset(data, split, ...)[i]` is a dict (see docs/architecture.md, Samples):
`image` float32 [3,H,W] in [0,1] (the fg_bg composite), `bg` float32 [3,H,W],
`mask` float32 [1,H,W] in {0,1}, `depth` float32 [1,H,W] metres, `index` int.
Samples are composed on the fly from the cached sources (see `composition`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from maskdepth.data.composition import Composer
from maskdepth.data.manifest import Manifest, load_manifest
from maskdepth.data.objects import ObjectStore
from maskdepth.data.sources import SourceSpec, check_size, load_sources
from maskdepth.errors import MaskdepthError
from maskdepth.stages import SPLITS, STAGES


class SyntheticDataset(Dataset):
    """One split of a stage's manifest, composed at `size` x `size`."""

    def __init__(self, manifest: Manifest, split: str, size: int = 64, cache_dir=None, augment=False):
        from maskdepth.data.transforms import build_augment

        self.manifest = manifest
        self.split = split
        self.size = check_size(size)
        self.rows = manifest.rows(split)
        self.source_set = load_sources(SourceSpec(seed=manifest.seed), self.size, cache_dir)
        m = manifest
        self.composer = Composer(
            self.source_set,
            m.values("bg", self.rows),
            m.values("fg", self.rows),
            m.values("placement", self.rows),
            m.values("u", self.rows),
            m.values("v", self.rows),
            m.values("scale", self.rows),
            m.values("flip", self.rows),
            store=ObjectStore.open(self.source_set, manifest.stage, manifest.sha256()),
        )
        self.transform = build_augment() if augment is True else (augment or None)

    def __len__(self) -> int:
        return len(self.rows)

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {self.manifest.stage}/{self.split} ({n} samples)")
        return i % n

    def compose(self, i: int) -> dict[str, np.ndarray]:
        """Sample i as numpy arrays (no augmentation): image, bg, mask, depth."""
        return self.composer.compose(self._check_index(i))

    def __getitem__(self, i: int) -> dict:
        i = self._check_index(int(i))
        sample = {k: torch.from_numpy(v) for k, v in self.composer.compose(i).items()}
        if self.transform is not None:
            from maskdepth.data.transforms import apply_joint

            sample = apply_joint(self.transform, sample)
        sample["index"] = i
        return sample

    def info(self, i: int) -> dict:
        """The manifest row of sample i plus its derived geometry (for plots and debugging)."""
        i = self._check_index(i)
        row = int(self.rows[i])
        out = {name: self.manifest.values(name, row).item() for name in self.manifest.columns}
        out["split"] = SPLITS[out["split"]]
        c = self.composer
        fg = self.source_set.foregrounds[out["fg"]]
        cam = c.camera(i)
        x, z = c.foot(i)
        out.update(
            fg_family=fg.family,
            fg_height_m=fg.height_m,
            fg_ood=out["fg"] >= self.source_set.spec.first_ood_fg,
            foot_x=x,
            foot_z=z,
            camera_height=cam.height,
            focal=cam.focal,
            bg_family=self.source_set.backgrounds[out["bg"]].family,
            bg_kind=self.source_set.backgrounds[out["bg"]].kind,
        )
        return out

    def sources(self, i: int) -> dict:
        """The source images of sample i: bg RGB uint8 [S,S,3], bg depth [S,S], and its info."""
        info = self.info(i)
        c = self.composer
        slot = c._view_slot[self._check_index(i)]
        return {
            "bg": np.floor(c._view_rgb[slot].transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8),
            "bg_depth": c._view_depth[slot],
            "info": info,
        }


def build_dataset(data: str, split: str, size: int = 64, seed: int = 0, cache_dir=None, augment=False) -> SyntheticDataset:
    """Dataset of one split of a stage ("playground" | "1k" | "full") or of a dataset directory
    (written by `maskdepth data materialize/import/compose`, see `datadir`).

    `augment`: False, True (flip + colour jitter, see `transforms.build_augment`) or any
    transforms.v2 callable. `cache_dir` defaults to $MASKDEPTH_CACHE or ~/.cache/maskdepth.
    """
    if split not in SPLITS:
        raise MaskdepthError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    check_size(size)
    if data not in STAGES:
        if Path(str(data)).is_dir():
            from maskdepth.data.datadir import open_dataset_dir

            return open_dataset_dir(data, split, size=size, augment=augment)
        raise MaskdepthError(f"data={data!r}: not a stage ({', '.join(STAGES)}) nor an existing dataset directory")
    manifest = load_manifest(data, seed)
    return SyntheticDataset(manifest, split, size=size, cache_dir=cache_dir, augment=augment)


def model_input(batch: dict, in_channels: int) -> torch.Tensor:
    """The network input of a batch (or of one sample): image for 3 channels, cat([bg, image]) for 6."""
    if in_channels == 3:
        return batch["image"]
    if in_channels == 6:
        if "bg" not in batch:
            raise MaskdepthError("in_channels=6 needs the background image, but the batch has no 'bg'")
        return torch.cat([batch["bg"], batch["image"]], dim=-3)
    raise MaskdepthError(f"in_channels={in_channels!r}: must be 3 (fg_bg image) or 6 (bg + fg_bg images)")
