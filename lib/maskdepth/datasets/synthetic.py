"""One split of a stage's manifest as a torch Dataset: samples composed on the fly from the
cached sources (see `composition`), in the sample contract of `build_dataset` (the last steps
shared with the dataset-folder readers: `samples`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from maskdepth.datasets.samples import check_index, finish_sample, resolve_augment
from maskdepth.plan.stages import SPLITS
from maskdepth.world.composition import Composer
from maskdepth.world.manifest import Manifest
from maskdepth.world.objects import ObjectStore
from maskdepth.world.sources import SourceSpec, check_size, load_sources


class SyntheticDataset(Dataset):
    """One split of a stage's manifest, composed at `size` x `size`."""

    def __init__(self, manifest: Manifest, split: str, size: int = 64, cache_dir=None, augment=False):
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
        self.transform = resolve_augment(augment)

    def __len__(self) -> int:
        return len(self.rows)

    def _check_index(self, i: int) -> int:
        return check_index(i, len(self), f"{self.manifest.stage}/{self.split}")

    def compose(self, i: int) -> dict[str, np.ndarray]:
        """Sample i as numpy arrays (no augmentation): image, bg, mask, depth."""
        return self.composer.compose(self._check_index(i))

    def __getitem__(self, i: int) -> dict:
        i = self._check_index(i)
        sample = {k: torch.from_numpy(v) for k, v in self.composer.compose(i).items()}
        return finish_sample(sample, self.transform, i)

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
