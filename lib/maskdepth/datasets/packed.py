"""Packed dataset directories: one memory-mapped .npy array per field and split.

Each background is stored once, not once per sample (a third of the space), and samples are read
through memory maps, so the operating system pages in what a batch touches and a 400k-sample
dataset trains without loading it into memory. Writing (`write_packed`) is resumable and atomic:
arrays are filled in `.partial/` with durable progress records, finished splits are renamed to
their final names, and dataset.json comes last, so a rerun continues from the last checkpoint.
The arrays, their dtypes and shapes: docs/data.md, "The packed layout"."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import atomic_path, read_json, write_json, write_text
from maskdepth.core.progress import progress
from maskdepth.datasets.datadir import already_complete, claim_output, finish_output, read_dataset_json
from maskdepth.datasets.samples import as_tensors, check_index, finish_sample, resolve_augment
from maskdepth.plan.stages import SPLITS

CHECKPOINT_EVERY = 256  # samples between durable progress records


def field_specs(size: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """dtype and per-sample shape of every per-split array."""
    return {
        "image": (np.dtype(np.uint8), (3, size, size)),
        "mask": (np.dtype(np.uint8), (size, size)),
        "depth": (np.dtype(np.uint16), (size, size)),
        "bg": (np.dtype(np.int32), ()),
        "flip": (np.dtype(np.uint8), ()),
    }


@dataclass
class PackedSample:
    """One sample in its stored form."""

    image: np.ndarray  # uint8 [3, S, S]
    mask: np.ndarray  # uint8 {0, 1} [S, S]
    depth: np.ndarray  # uint16 metres * 256 [S, S]
    bg: int = -1  # row of backgrounds.npy, -1 if none
    flip: bool = False


# --- writing ----------------------------------------------------------------------------------


def write_packed(out, *, size: int, counts: dict[str, int], identity: dict, backgrounds: np.ndarray,
                 samples: Callable[[str, int], Iterable[PackedSample]], rows: Callable[[], list[dict]],
                 meta: dict, desc: str = "packing") -> dict:
    """Write a packed dataset directory (or complete an interrupted one); returns what was done.

    `samples(split, start)` yields the split's samples from index `start` on, in order;
    `rows()` gives the samples.csv rows; `identity` describes what is being written: a
    rerun continues only the same job, anything else is refused rather than mixed.
    """
    out = Path(out)
    summary = {"written": 0, "resumed": {}, "complete_already": False, "seconds": 0.0}
    if already_complete(out, identity):
        summary["complete_already"] = True
        return summary
    start_time = time.perf_counter()
    partial = claim_output(out, {"identity": identity, "size": size})
    with atomic_path(out / "backgrounds.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(backgrounds, dtype=np.uint8), allow_pickle=False)
    specs = field_specs(size)
    total = sum(counts.values())
    bar = progress(desc=desc, total=total, unit="sample")
    try:
        for split in SPLITS:
            n = counts.get(split, 0)
            if (partial / f"{split}.done").is_file():
                _publish(out, partial, split, specs)
                bar.update(n)
                continue
            arrays, done = _open_partial(partial, split, n, specs)
            summary["resumed"][split] = done
            bar.update(done)
            produced = done
            for sample in samples(split, done):
                if produced >= n:
                    raise MaskdepthError(f"internal: more than {n} samples produced for split {split}")
                _put(arrays, produced, sample)
                produced += 1
                summary["written"] += 1
                bar.update(1)
                if produced % CHECKPOINT_EVERY == 0:
                    _checkpoint(arrays, partial, split, produced)
            if produced != n:
                raise MaskdepthError(f"internal: {produced} of {n} samples produced for split {split}")
            for arr in arrays.values():
                arr.flush()
            del arrays
            write_text(partial / f"{split}.done", f"{n}\n")
            _publish(out, partial, split, specs)
    finally:
        bar.close()
    finish_output(out, {"layout": "packed", "size": size, "counts": counts, "identity": identity, **meta}, rows())
    summary["seconds"] = time.perf_counter() - start_time
    return summary


def _open_partial(partial: Path, split: str, n: int, specs) -> tuple[dict, int]:
    """The split's memory maps in .partial (continued when intact) and how many samples are durable."""
    if n == 0:  # nothing to fill (and an empty file cannot be memory-mapped)
        for name, (dtype, shape) in specs.items():
            np.save(partial / f"{split}.{name}.npy", np.zeros((0, *shape), dtype), allow_pickle=False)
        return {}, 0
    done = 0
    try:
        done = int(read_json(partial / f"{split}.progress.json")["done"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if 0 < done <= n:
        try:
            arrays = {name: np.lib.format.open_memmap(partial / f"{split}.{name}.npy", mode="r+")
                      for name in specs}
            if all(arrays[name].shape == (n, *shape) and arrays[name].dtype == dtype
                   for name, (dtype, shape) in specs.items()):
                return arrays, done
        except (OSError, ValueError):
            pass
    arrays = {name: np.lib.format.open_memmap(partial / f"{split}.{name}.npy", mode="w+", dtype=dtype,
                                              shape=(n, *shape))
              for name, (dtype, shape) in specs.items()}
    return arrays, 0


def _put(arrays: dict, i: int, sample: PackedSample) -> None:
    arrays["image"][i] = sample.image
    arrays["mask"][i] = sample.mask
    arrays["depth"][i] = sample.depth
    arrays["bg"][i] = sample.bg
    arrays["flip"][i] = bool(sample.flip)


def _checkpoint(arrays: dict, partial: Path, split: str, done: int) -> None:
    for arr in arrays.values():
        arr.flush()
    write_json(partial / f"{split}.progress.json", {"done": done})


def _publish(out: Path, partial: Path, split: str, specs) -> None:
    """Move a finished split's arrays to their final names (idempotent, so a rerun can finish it)."""
    for name in specs:
        src = partial / f"{split}.{name}.npy"
        if src.is_file():
            with open(src, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(src, out / f"{split}.{name}.npy")
        elif not (out / f"{split}.{name}.npy").is_file():
            raise MaskdepthError(f"{out}: split {split} marked finished but {name} is missing; "
                                 f"delete {partial} and run again")


# --- reading ----------------------------------------------------------------------------------


class PackedDataset(Dataset):
    """One split of a packed dataset directory; arrays are memory-mapped on first use in each process."""

    def __init__(self, path, split: str, meta: dict | None = None, augment=False):
        self.path = Path(path)
        self.meta = meta if meta is not None else read_dataset_json(path)
        self.split = split
        self.size = int(self.meta["size"])
        self.count = int(self.meta["counts"][split])
        self.transform = resolve_augment(augment)
        self._arrays: dict | None = None
        self._pid = None
        self._check_files()

    def _check_files(self) -> None:
        """Every file present with the shape dataset.json promises (headers only, no data read)."""
        for name, (dtype, shape) in field_specs(self.size).items():
            self._load(f"{self.split}.{name}.npy", (self.count, *shape), dtype)
        bgs = self._load("backgrounds.npy", None, np.dtype(np.uint8))
        if bgs.ndim != 4 or bgs.shape[1:] != (3, self.size, self.size):
            raise MaskdepthError(f"{self.path / 'backgrounds.npy'}: shape {bgs.shape}, expected [B, 3, S, S]")

    def _load(self, name: str, shape, dtype) -> np.ndarray:
        path = self.path / name
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise MaskdepthError(f"{path}: missing from the packed dataset {self.path}") from None
        except (OSError, ValueError) as exc:
            if "empty" in str(exc) or "cannot mmap" in str(exc):  # a zero-length array: nothing to map
                arr = np.load(path, allow_pickle=False)
            else:
                raise MaskdepthError(f"{path}: unreadable ({exc})") from exc
        if (shape is not None and arr.shape != shape) or arr.dtype != dtype:
            raise MaskdepthError(f"{path}: {arr.dtype} {list(arr.shape)}, expected {dtype} {list(shape or [])}")
        return arr

    def arrays(self) -> dict[str, np.ndarray]:
        """The memory maps of this split (opened again in each DataLoader worker process)."""
        if self._arrays is None or self._pid != os.getpid():
            arrays = {name: self._load(f"{self.split}.{name}.npy", None, dtype)
                      for name, (dtype, _) in field_specs(self.size).items()}
            arrays["backgrounds"] = self._load("backgrounds.npy", None, np.dtype(np.uint8))
            self._arrays, self._pid = arrays, os.getpid()
        return self._arrays

    def __getstate__(self):  # workers get paths, not copies of the memory maps
        state = dict(self.__dict__)
        state["_arrays"] = None
        return state

    def __len__(self) -> int:
        return self.count

    def stored(self, i: int) -> tuple[PackedSample, np.ndarray]:
        """Sample i as stored (uint8 / uint16) and its background uint8 [3, S, S] (mirrored if flipped)."""
        i = check_index(i, self.count, f"{self.path}/{self.split}")
        a = self.arrays()
        sample = PackedSample(np.asarray(a["image"][i]), np.asarray(a["mask"][i]), np.asarray(a["depth"][i]),
                              int(a["bg"][i]), bool(a["flip"][i]))
        if sample.bg < 0:
            return sample, sample.image
        bg = np.asarray(a["backgrounds"][sample.bg])
        return sample, (bg[:, :, ::-1] if sample.flip else bg)

    def __getitem__(self, i: int) -> dict:
        i = check_index(i, self.count, f"{self.path}/{self.split}")
        s, bg = self.stored(i)
        return finish_sample(as_tensors(s.image, bg, s.mask, s.depth), self.transform, i)
