"""Compose real photos: background photos x RGBA foreground cut-outs, depth from a teacher.

A sample is composed with the same rules as `composition`; what differs is where labels come
from: the mask is exact (the foreground's alpha), the depth is a teacher model's (`teacher`), as
the capstone's dataset was labelled by DenseDepth, so it is only as good as the teacher and
dataset.json says `depth.units = "teacher"`. Placements come from a seeded generator (the same
inputs give the same dataset); `unseen` holds out whole background photos.
Inputs, the placement rule and the splits: docs/data.md, "Real photos composed"."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskdepth.core.depth import DEPTH_MAX, DEPTH_MIN, DEPTH_PNG_SCALE, depth_to_png16
from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import check_output, folder_lock
from maskdepth.core.imageio import expand_inputs
from maskdepth.datasets.datadir import already_complete, assign_splits
from maskdepth.datasets.files import center_square, open_image, resize, rgb_array, rgba_array
from maskdepth.datasets.materialize import to_uint8
from maskdepth.datasets.packed import PackedSample, write_packed
from maskdepth.plan.stages import SPLITS

V_MIN, V_MAX = 0.55, 0.95
U_MARGIN = 0.15
FRAC_FAR, FRAC_NEAR = 0.3, 0.7
MAX_WIDTH = 0.9


@dataclass(frozen=True)
class Placement:
    u: float
    v: float
    height_frac: float
    mirror: bool


def place(seed: int, bg: int, fg: int, k: int) -> Placement:
    rng = np.random.default_rng([seed, bg, fg, k])
    v = rng.uniform(V_MIN, V_MAX)
    u = rng.uniform(U_MARGIN, 1.0 - U_MARGIN)
    frac = (FRAC_FAR + (FRAC_NEAR - FRAC_FAR) * (v - V_MIN) / (V_MAX - V_MIN)) * rng.uniform(0.9, 1.1)
    return Placement(float(u), float(v), float(frac), bool(rng.integers(2)))


def paste(bg: np.ndarray, fg_rgba: np.ndarray, p: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Composite (float32 [3,S,S] in [0,1]) and mask ({0,1} uint8 [S,S]) of a foreground on bg uint8 [3,S,S]."""
    S = bg.shape[-1]
    rh, rw = fg_rgba.shape[:2]
    h = max(1, int(round(p.height_frac * S)))
    w = max(1, int(round(rw * h / rh)))
    if w > MAX_WIDTH * S:  # a wide object: keep it inside the frame's width
        w = max(1, int(MAX_WIDTH * S))
        h = max(1, int(round(rh * w / rw)))
    sprite = Image.fromarray(fg_rgba[:, ::-1] if p.mirror else fg_rgba)
    resized = np.asarray(sprite.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0
    alpha = resized[..., 3]
    rgb = (resized[..., :3] * alpha[..., None]).transpose(2, 0, 1)
    image = bg.astype(np.float32) / 255.0
    mask = np.zeros((S, S), np.uint8)
    y0, x0 = int(round(p.v * S)) - h, int(round(p.u * S - w / 2.0))
    ys, ye, xs, xe = max(y0, 0), min(y0 + h, S), max(x0, 0), min(x0 + w, S)
    if ys < ye and xs < xe:
        win = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
        a = alpha[win]
        image[:, ys:ye, xs:xe] = image[:, ys:ye, xs:xe] * (1.0 - a) + rgb[(slice(None),) + win]
        mask[ys:ye, xs:xe] = a > 0.5
    return image, mask


def load_backgrounds(folder, size: int) -> tuple[list[str], np.ndarray, list[Path]]:
    files = _image_files(folder, "--bg")
    arrays = []
    for f in files:
        with open_image(f.path) as im:
            arrays.append(resize(center_square(rgb_array(im, f.path)), size, label=False).transpose(2, 0, 1))
    return [f.name for f in files], np.stack(arrays), [f.path for f in files]


def load_foregrounds(folder) -> tuple[list[str], list[np.ndarray], list[Path]]:
    files = _image_files(folder, "--fg")
    sprites = []
    for f in files:
        with open_image(f.path) as im:
            rgba = rgba_array(im, f.path)
        ys, xs = np.nonzero(rgba[..., 3])
        sprites.append(np.ascontiguousarray(rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]))
    return [f.name for f in files], sprites, [f.path for f in files]


def _image_files(folder, flag: str):
    if folder is None:
        raise MaskdepthError(f"{flag} DIR is required")
    files, errors = expand_inputs([folder])
    if errors:
        raise errors[0]
    return files


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def compose_real(bg_dir, fg_dir, teacher, out, *, size: int = 64, per_pair: int = 2, seed: int = 0,
                 batch_size: int = 16) -> dict:
    """Compose every (bg, fg) pair `per_pair` times, label depth with `teacher` (a `Teacher`), write packed."""
    from maskdepth.world.sources import check_size

    size = check_size(size)
    if per_pair < 1 or batch_size < 1:
        raise MaskdepthError("--per-pair and --batch-size must be >= 1")
    check_output(out, reads=[bg_dir, fg_dir, teacher.path], folder=True)
    with folder_lock(out, "data compose"):
        return _compose(bg_dir, fg_dir, teacher, out, size, per_pair, seed, batch_size)


def _compose(bg_dir, fg_dir, teacher, out, size: int, per_pair: int, seed: int, batch_size: int) -> dict:
    start = time.perf_counter()
    bg_names, backgrounds, bg_paths = load_backgrounds(bg_dir, size)
    fg_names, sprites, fg_paths = load_foregrounds(fg_dir)
    jobs = [(b, f, k) for b in range(len(bg_names)) for f in range(len(fg_names)) for k in range(per_pair)]
    names = [f"{bg_names[b]}__{fg_names[f]}__{k}" for b, f, k in jobs]
    splits, split_method = assign_splits(names, [bg_names[b] for b, _, _ in jobs])
    order = {s: [j for j, sp in enumerate(splits) if sp == s] for s in SPLITS}
    counts = {s: len(order[s]) for s in SPLITS}
    identity = {"kind": "composed", "bg": _fingerprint(bg_paths), "fg": _fingerprint(fg_paths),
                "teacher": {**teacher.describe(), "fingerprint": _fingerprint([teacher.path])},
                "size": size, "per_pair": per_pair, "seed": seed}
    if already_complete(out, identity):
        return {"out": str(out), "complete_already": True, "seconds": 0.0, "samples_per_s": None}

    def samples(split: str, start_at: int):
        todo = order[split][start_at:]
        for lo in range(0, len(todo), batch_size):
            batch = []
            for j in todo[lo : lo + batch_size]:
                b, f, k = jobs[j]
                image, mask = paste(backgrounds[b], sprites[f], place(seed, b, f, k))
                batch.append((to_uint8(image), mask, b))
            depth = teacher(np.stack([img for img, _, _ in batch]).astype(np.float32) / 255.0)
            for (img, mask, b), d in zip(batch, depth):
                yield PackedSample(img, mask, depth_to_png16(d), b, False)

    def rows():
        out_rows = []
        for s in SPLITS:
            for i, j in enumerate(order[s]):
                b, f, k = jobs[j]
                p = place(seed, b, f, k)
                out_rows.append({"split": s, "index": i, "name": names[j], "bg": str(bg_paths[b]),
                                 "fg": str(fg_paths[f]), "u": round(p.u, 6), "v": round(p.v, 6),
                                 "height_frac": round(p.height_frac, 6), "mirror": int(p.mirror)})
        return out_rows

    meta = {
        "source": {"kind": "composed", "backgrounds": len(bg_names), "foregrounds": len(fg_names),
                   "per_pair": per_pair, "seed": seed},
        "depth": {"units": "teacher", "teacher": teacher.describe(), "png_scale": DEPTH_PNG_SCALE,
                  "range": [DEPTH_MIN, DEPTH_MAX],
                  "note": "depth predicted by the teacher on each composite (metric only if the teacher is); "
                          "masks are exact"},
        "splits": split_method,
        "backgrounds": bg_names,
    }
    result = write_packed(out, size=size, counts=counts, identity=identity, backgrounds=backgrounds,
                          samples=samples, rows=rows, meta=meta, desc="compose")
    seconds = time.perf_counter() - start
    return {**result, "out": str(out), "counts": counts, "seconds": seconds,
            "samples_per_s": result["written"] / seconds if seconds > 0 and result["written"] else None}

