"""Which Dataset a `data` value means, and how a batch becomes the network input.

`build_dataset(data, split, ...)[i]` is a dict (see docs/architecture.md, Samples):
`image` float32 [3,H,W] in [0,1] (the fg_bg composite), `bg` float32 [3,H,W],
`mask` float32 [1,H,W] in {0,1}, `depth` float32 [1,H,W] metres, `index` int.
A stage name gives a `SyntheticDataset` (`synthetic`: composed on the fly from the cached
sources); a dataset directory gives the reader of its layout (`open_dataset_dir`: `packed` or
`folder_dataset`; the directory contract is `datadir`). `open_split` is the same for the
trainer and validate, with None for a split without samples.
"""

from __future__ import annotations

from pathlib import Path

import torch

from maskdepth.core.errors import MaskdepthError
from maskdepth.datasets.datadir import is_dataset_dir, read_dataset_json
from maskdepth.datasets.folder_dataset import FolderDataset
from maskdepth.datasets.packed import PackedDataset
from maskdepth.datasets.synthetic import SyntheticDataset
from maskdepth.plan.stages import SPLITS, STAGES
from maskdepth.world.manifest import load_manifest
from maskdepth.world.sources import check_size

__all__ = ["FolderDataset", "PackedDataset", "SyntheticDataset", "build_dataset", "model_input", "open_dataset_dir",
           "open_split"]


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
            return open_dataset_dir(data, split, size=size, augment=augment)
        raise MaskdepthError(f"data={data!r}: not a stage ({', '.join(STAGES)}) nor an existing dataset directory")
    manifest = load_manifest(data, seed)
    return SyntheticDataset(manifest, split, size=size, cache_dir=cache_dir, augment=augment)


def open_dataset_dir(path, split: str, size: int | None = None, augment=False):
    """The torch Dataset of one split of a dataset directory (packed or folders layout).

    `size` must equal the size the directory was written at (None: take it); samples are
    not resampled on the fly, since that would silently change the labels' resolution.
    """
    meta = read_dataset_json(path)
    if split not in SPLITS:
        raise MaskdepthError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    if size is not None and int(size) != int(meta["size"]):
        raise MaskdepthError(
            f"dataset {path} holds {meta['size']}px samples but size={size} was asked: use size={meta['size']} "
            f"(e.g. -p size {meta['size']}) or write the dataset again with --size {size}"
        )
    if meta["layout"] == "packed":
        return PackedDataset(path, split, meta, augment=augment)
    return FolderDataset(path, split, meta, augment=augment)


def open_split(data: str, split: str, size: int, seed: int):
    """The dataset of one split, or None when `data` has no samples in it (a dataset folder
    made by an import, by real photos or before the `ood` split existed may have none)."""
    if is_dataset_dir(data) and not int((read_dataset_json(data).get("counts") or {}).get(split, 0)):
        return None
    dataset = build_dataset(data, split, size=size, seed=seed)
    return dataset if len(dataset) else None


def model_input(batch: dict, in_channels: int) -> torch.Tensor:
    """The network input of a batch (or of one sample): image for 3 channels, cat([bg, image]) for 6."""
    if in_channels == 3:
        return batch["image"]
    if in_channels == 6:
        if "bg" not in batch:
            raise MaskdepthError("in_channels=6 needs the background image, but the batch has no 'bg'")
        return torch.cat([batch["bg"], batch["image"]], dim=-3)
    raise MaskdepthError(f"in_channels={in_channels!r}: must be 3 (fg_bg image) or 6 (bg + fg_bg images)")
