"""Reading a dataset directory in the capstone's folder layout (`fg_bg/`, `mask/`, `depth/`, `bg/`).

File names come from dataset.json's `files` templates, filled with the samples.csv row
(`{name}`, `{bg_file}`). Each sample decodes three PNG/JPEG files, slower than the packed
layout: use `maskdepth data materialize --format packed` for long training runs. A file
that is missing, truncated, of the wrong mode or size raises a `BadInputError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from maskdepth.core.errors import BadInputError, MaskdepthError
from maskdepth.datasets.datadir import read_samples_csv
from maskdepth.datasets.files import depth_raw_array, mask_array, open_image, rgb_array
from maskdepth.datasets.samples import as_tensors, check_index, finish_sample, resolve_augment


def _depth16(image, path) -> np.ndarray:
    values, bits = depth_raw_array(image, path)
    if bits != 16:
        raise BadInputError(path, "8-bit depth map: this layout stores 16-bit PNGs of metres * 256")
    return values


class FolderDataset(Dataset):
    """One split of a folders-layout dataset directory; depth PNGs hold metres * 256 (16-bit)."""

    def __init__(self, path, split: str, meta: dict, augment=False):
        self.path = Path(path)
        self.meta = meta
        self.split = split
        self.size = int(meta["size"])
        self.files = meta.get("files") or {}
        for key in ("image", "mask", "depth"):
            if key not in self.files:
                raise MaskdepthError(f"{self.path / 'dataset.json'}: 'files' has no template for {key!r}")
        self.rows = [r for r in read_samples_csv(self.path) if r.get("split") == split]
        if len(self.rows) != int(meta["counts"][split]):
            raise MaskdepthError(f"{self.path}: samples.csv lists {len(self.rows)} {split} samples, "
                                 f"dataset.json says {meta['counts'][split]}")
        self.transform = resolve_augment(augment)

    def __len__(self) -> int:
        return len(self.rows)

    def _file(self, key: str, row: dict) -> Path:
        return self.path / self.files[key].format(**row)

    def _read(self, key: str, row: dict, convert) -> np.ndarray:
        path = self._file(key, row)
        with open_image(path) as image:
            array = convert(image, path)
        if array.shape[:2] != (self.size, self.size):
            raise BadInputError(path, f"{array.shape[1]}x{array.shape[0]} pixels, the dataset's size is "
                                      f"{self.size}x{self.size}")
        return array

    def __getitem__(self, i: int) -> dict:
        i = check_index(i, len(self), f"{self.path}/{self.split}")
        row = self.rows[i]
        image = self._read("image", row, rgb_array).transpose(2, 0, 1)
        mask = self._read("mask", row, mask_array)
        depth = self._read("depth", row, _depth16)
        bg = image
        if "bg" in self.files and row.get("bg_file"):
            bg = self._read("bg", row, rgb_array).transpose(2, 0, 1)
            if str(row.get("flip", "0")) in ("1", "True", "true"):
                bg = bg[:, :, ::-1]
        return finish_sample(as_tensors(image, bg, mask, depth), self.transform, i)
