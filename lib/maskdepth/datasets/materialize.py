"""Write a synthetic stage to disk: packed arrays (fast training) or the capstone's folder layout.

`packed` is exact (the composed mask, depth rounded to 1/256 m, images to uint8); `folders` is
the capstone's layout, to look at, share or feed other tools, named so that `maskdepth data
import` of it recovers the held-out backgrounds. Both are resumable: a killed run leaves no
dataset.json, and the same command completes it.
File names and formats: docs/data.md, "A stage written to disk"."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, DEPTH_PNG_SCALE, depth_to_png16
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import atomic_path, check_output, folder_lock
from maskdepth.core.imageio import save_png
from maskdepth.core.progress import progress
from maskdepth.datasets.datadir import already_complete, claim_output, finish_output
from maskdepth.datasets.packed import PackedSample, write_packed
from maskdepth.plan.stages import SPLITS

FORMATS = ("packed", "folders")
JPEG_QUALITY = 95
FOLDER_FILES = {"image": "fg_bg/{name}.jpg", "mask": "mask/{name}.png", "depth": "depth/{name}.png"}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8, rounded to nearest."""
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def sample_name(bg: int, fg: int, placement: int, flip: bool) -> str:
    return f"bg{bg:03d}_fg{fg:03d}_p{placement:02d}{'_flip' if flip else ''}"


def materialize(stage: str, out, fmt: str = "packed", size: int = 64, seed: int = 0, cache_dir=None) -> dict:
    """Write `stage` to `out` (or complete an interrupted write); returns counts, seconds, samples/s."""

    if fmt not in FORMATS:
        raise MaskdepthError(f"format={fmt!r}: choose one of {', '.join(FORMATS)}")
    check_output(out, folder=True)
    with folder_lock(out, "data materialize"):
        return _materialize(stage, out, fmt, size, seed, cache_dir)


def _materialize(stage: str, out, fmt: str, size: int, seed: int, cache_dir) -> dict:
    from maskdepth.datasets.dataset import build_dataset

    datasets = {split: build_dataset(stage, split, size=size, seed=seed, cache_dir=cache_dir) for split in SPLITS}
    first = datasets["train"]
    columns = {
        split: {name: ds.manifest.values(name, ds.rows) for name in ("id", "bg", "fg", "placement", "flip")}
        for split, ds in datasets.items()
    }
    counts = {split: len(ds) for split, ds in datasets.items()}
    identity = {"kind": "synthetic", "stage": stage, "seed": seed, "size": size, "layout": fmt,
                "manifest_sha256": first.manifest.sha256()}
    rows = [
        {"split": split, "index": k, "name": sample_name(int(c["bg"][k]), int(c["fg"][k]), int(c["placement"][k]),
                                                         bool(c["flip"][k])),
         "id": int(c["id"][k]), "bg": int(c["bg"][k]), "fg": int(c["fg"][k]),
         "placement": int(c["placement"][k]), "flip": int(c["flip"][k])}
        for split, c in columns.items() for k in range(counts[split])
    ]
    meta = {
        "source": {"kind": "synthetic", "stage": stage, "seed": seed, "manifest_sha256": identity["manifest_sha256"]},
        "depth": {"units": "metres", "png_scale": DEPTH_PNG_SCALE, "range": [DEPTH_MIN, DEPTH_MAX],
                  "note": "exact synthetic depth, stored as rounded metres * 256"},
        "splits": {"method": "the stage's manifest (seen: new placements; unseen: held-out backgrounds "
                             "and foregrounds)"},
    }
    start = time.perf_counter()
    if fmt == "packed":
        result = _packed(out, datasets, columns, counts, identity, rows, meta, size)
    else:
        result = _folders(out, datasets, columns, counts, identity, rows, meta, size)
    seconds = time.perf_counter() - start
    return {**result, "out": str(out), "format": fmt, "counts": counts, "seconds": seconds,
            "samples_per_s": result["written"] / seconds if result["written"] and seconds > 0 else None}


def _packed(out, datasets, columns, counts, identity, rows, meta, size) -> dict:
    first = datasets["train"]
    used = sorted({(int(b), int(p)) for c in columns.values() for b, p in zip(c["bg"], c["placement"])})
    slot = {view: k for k, view in enumerate(used)}
    backgrounds = (_view_images(first, used).transpose(0, 3, 1, 2) if used
                   else np.zeros((0, 3, size, size), dtype=np.uint8))

    def samples(split: str, start: int):
        ds, c = datasets[split], columns[split]
        for i in range(start, len(ds)):
            s = ds.compose(i)
            yield PackedSample(to_uint8(s["image"]), s["mask"][0].astype(np.uint8), depth_to_png16(s["depth"][0]),
                               slot[(int(c["bg"][i]), int(c["placement"][i]))], bool(c["flip"][i]))

    meta = {**meta, "backgrounds": [_view_name(b, p) for b, p in used]}
    return write_packed(out, size=size, counts=counts, identity=identity, backgrounds=backgrounds,
                        samples=samples, rows=lambda: rows, meta=meta, desc=f"materialize {identity['stage']}")


def _folders(out, datasets, columns, counts, identity, rows, meta, size) -> dict:
    out = Path(out)
    if already_complete(out, identity):
        return {"written": 0, "kept": 0, "complete_already": True}
    claim_output(out, {"identity": identity, "size": size, "counts": counts})
    first = datasets["train"]
    views = sorted({(int(b), int(p)) for c in columns.values() for b, p in zip(c["bg"], c["placement"])})
    missing = [v for v in views if not (out / "bg" / f"{_view_name(*v)}.png").is_file()]
    for view, rgb in zip(missing, _view_images(first, missing) if missing else []):
        save_png(out / "bg" / f"{_view_name(*view)}.png", np.ascontiguousarray(rgb))
    written = kept = 0
    bar = progress(desc=f"materialize {identity['stage']}", total=len(rows), unit="sample")
    try:
        for row in rows:
            paths = {k: out / pattern.format(name=row["name"]) for k, pattern in FOLDER_FILES.items()}
            if all(p.is_file() for p in paths.values()):
                kept += 1
            else:
                write_folder_sample(paths, datasets[row["split"]].compose(row["index"]))
                written += 1
            bar.update(1)
    finally:
        bar.close()
    for row in rows:
        row["bg_file"] = f"bg/{_view_name(row['bg'], row['placement'])}.png"
    meta = {**meta, "files": {**FOLDER_FILES, "bg": "{bg_file}"}, "jpeg_quality": JPEG_QUALITY}
    finish_output(out, {"layout": "folders", "size": size, "counts": counts, "identity": identity, **meta}, rows)
    return {"written": written, "kept": kept, "complete_already": False}


def _view_name(bg: int, placement: int) -> str:
    return f"bg{bg:03d}_p{placement:02d}"


def _view_images(dataset, views) -> np.ndarray:
    """uint8 [N, S, S, 3]: the background views (bg, placement) of a synthetic dataset's sources."""
    bg, placement = (np.array(a, dtype=np.int64) for a in zip(*views))
    return dataset.source_set.views(bg, placement)["rgb"]


def write_folder_sample(paths: dict[str, Path], sample: dict[str, np.ndarray]) -> None:
    """The composite (JPEG), mask (8-bit PNG) and depth (16-bit PNG) of one sample, each atomically."""
    image = to_uint8(sample["image"]).transpose(1, 2, 0)
    with atomic_path(paths["image"]) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    save_png(paths["mask"], (sample["mask"][0] > 0.5).astype(np.uint8) * 255)
    save_png(paths["depth"], depth_to_png16(sample["depth"][0]))
