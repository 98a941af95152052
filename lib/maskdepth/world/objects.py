"""A stage's rendered objects packed on disk: render once, compose many.

Ray-tracing an object into its view costs far more than composing it, and the full stage sees each
of its placements once per epoch. `build_store` traces every (bg, fg, placement) of a stage once,
in parallel, into flat arrays that `ObjectStore` reads back through memory maps; values are stored
exactly as `composition` computes them, so a sample from the store is byte-identical to one traced
on the fly. `index.json` is written last: a folder without it is ignored.
Layers, steps and folder name: docs/world.md, "The object store"."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np

from maskdepth.core.fileio import read_json, write_json
from maskdepth.core.progress import progress

STORE_FORMAT = "maskdepth-objects/1"
CHUNK = 256
_PLACEMENT_SLOTS = 1 << 16


def store_folder(sources, stage: str, manifest_sha: str) -> Path:
    return sources.folder.parent / f"objects_s{sources.size:03d}_{stage}_{manifest_sha[:16]}"


def _key(bg, fg, placement, n_fg: int) -> np.ndarray:
    return (np.asarray(bg, np.int64) * n_fg + np.asarray(fg, np.int64)) * _PLACEMENT_SLOTS + np.asarray(placement, np.int64)


def _render_chunk(args) -> dict[str, np.ndarray]:
    """Trace the objects and shadows of one chunk of rows (runs in a worker process)."""
    from maskdepth.world.composition import Composer
    from maskdepth.world.sources import load_sources

    spec, size, root, cols = args
    sources = load_sources(spec, size, root)
    n = len(cols["bg"])
    comp = Composer(sources, cols["bg"], cols["fg"], cols["placement"], cols["u"], cols["v"], cols["scale"],
                    np.zeros(n, dtype=bool))
    win, shadow_win = np.zeros((n, 4), np.int32), np.zeros((n, 4), np.int32)
    depth, alpha, rgb, shade = [], [], [], []
    for i in range(n):
        layer, shadow = comp.object_layer(i)
        comp._objects.clear()  # every row once: no need to keep them
        if layer is not None:
            win[i] = layer["window"]
            depth.append(layer["depth"].ravel())
            alpha.append(np.rint(layer["alpha"].ravel() * 4).astype(np.uint8))
            rgb.append(np.rint(layer["rgb"].reshape(3, -1) * 255).astype(np.uint8).T.ravel())
        if shadow is not None:
            shadow_win[i] = shadow[0]
            shade.append(np.rint(shadow[1].ravel() * 65535).astype(np.uint16))

    def cat(parts, dtype):
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    return {"win": win, "shadow_win": shadow_win, "depth": cat(depth, np.float32), "alpha": cat(alpha, np.uint8),
            "rgb": cat(rgb, np.uint8), "shade": cat(shade, np.uint16)}


def _offsets(win: np.ndarray) -> np.ndarray:
    area = (win[:, 1] - win[:, 0]).astype(np.int64) * (win[:, 3] - win[:, 2])
    return np.concatenate([[0], np.cumsum(area)])


def build_store(sources, stage: str, manifest, workers: int | None = None) -> dict:
    """Trace every (bg, fg, placement) of `manifest` once and pack them (see module doc).

    Returns {"folder", "objects", "built", "seconds", "bytes"}; an existing complete store is kept."""
    start = time.perf_counter()
    folder = store_folder(sources, stage, manifest.sha256())
    if (folder / "index.json").is_file():
        meta = read_json(folder / "index.json")
        return {"folder": str(folder), "objects": meta["objects"], "built": False, "seconds": 0.0,
                "bytes": sum(p.stat().st_size for p in folder.iterdir())}
    cols = {k: manifest.values(k) for k in ("bg", "fg", "placement", "u", "v", "scale")}
    keys = _key(cols["bg"], cols["fg"], cols["placement"], sources.spec.n_fg_total)
    keys, first = np.unique(keys, return_index=True)  # sorted, one row per placement (flips share it)
    rows = {k: v[first] for k, v in cols.items()}
    # The background views the chunks compose on, rendered here first: a pool's workers may not
    # start a pool of their own to render missing ones.
    pairs = np.unique(np.stack([rows["bg"], rows["placement"]], axis=1), axis=0)
    sources.views(pairs[:, 0], pairs[:, 1])
    root = sources.folder.parents[2]
    jobs = [(sources.spec, sources.size, root, {k: v[s:s + CHUNK] for k, v in rows.items()})
            for s in range(0, len(keys), CHUNK)]
    workers = workers or min(os.cpu_count() or 1, 16)
    parts: list[dict] = []
    bar = progress(total=len(keys), desc=f"objects {stage} {sources.size}px", unit="obj")
    try:
        if workers > 1 and len(jobs) > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for part in pool.imap(_render_chunk, jobs):
                    parts.append(part)
                    bar.update(len(part["win"]))
        else:
            for job in jobs:
                parts.append(_render_chunk(job))
                bar.update(len(parts[-1]["win"]))
    finally:
        bar.close()
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    arrays = {"keys": keys, **{k: np.concatenate([p[k] for p in parts]) for k in parts[0]}}
    for name, arr in arrays.items():
        np.save(partial / f"{name}.npy", arr, allow_pickle=False)
    write_json(partial / "index.json", {"format": STORE_FORMAT, "stage": stage, "size": sources.size,
                                        "manifest_sha256": manifest.sha256(), "objects": int(len(keys))})
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return {"folder": str(folder), "objects": int(len(keys)), "built": True,
            "seconds": round(time.perf_counter() - start, 3), "bytes": sum(p.stat().st_size for p in folder.iterdir())}


class ObjectStore:
    """Memory-mapped reader of a store written by `build_store`."""

    def __init__(self, folder: Path, n_fg: int):
        self.folder = Path(folder)
        self.n_fg = n_fg
        load = lambda name: np.load(self.folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)  # noqa: E731
        self.keys = np.asarray(load("keys"))
        self.win, self.shadow_win = np.asarray(load("win")), np.asarray(load("shadow_win"))
        self.obj_off, self.shadow_off = _offsets(self.win), _offsets(self.shadow_win)
        self.depth, self.alpha, self.rgb, self.shade = load("depth"), load("alpha"), load("rgb"), load("shade")

    def __getstate__(self) -> dict:  # DataLoader workers started by spawn reopen the maps, never copy them
        return {"folder": str(self.folder), "n_fg": self.n_fg}

    def __setstate__(self, state: dict) -> None:
        self.__init__(Path(state["folder"]), state["n_fg"])

    @classmethod
    def open(cls, sources, stage: str, manifest_sha: str) -> ObjectStore | None:
        """The stage's store if a complete one exists, else None (compose by tracing)."""
        folder = store_folder(sources, stage, manifest_sha)
        try:
            if read_json(folder / "index.json").get("format") != STORE_FORMAT:
                return None
            return cls(folder, sources.spec.n_fg_total)
        except (OSError, ValueError, KeyError):
            return None

    def find(self, bg: int, fg: int, placement: int) -> int:
        """Row of a placement in the store, or -1."""
        key = int(_key(bg, fg, placement, self.n_fg))
        row = int(np.searchsorted(self.keys, key))
        return row if row < len(self.keys) and self.keys[row] == key else -1

    def get(self, row: int) -> tuple[dict | None, tuple | None]:
        """(layer, shadow) exactly as `Composer.object_layer` computes them."""
        layer = shadow = None
        y0, y1, x0, x1 = (int(v) for v in self.win[row])
        if y1 > y0 and x1 > x0:
            a, b = self.obj_off[row], self.obj_off[row + 1]
            h, w = y1 - y0, x1 - x0
            layer = {
                "window": (y0, y1, x0, x1),
                "depth": np.asarray(self.depth[a:b], dtype=np.float32).reshape(h, w),
                "alpha": (np.asarray(self.alpha[a:b]).astype(np.float32) / np.float32(4.0)).reshape(h, w),
                "rgb": (np.asarray(self.rgb[3 * a:3 * b]).astype(np.float32) / np.float32(255.0))
                .reshape(h, w, 3).transpose(2, 0, 1),
            }
        y0, y1, x0, x1 = (int(v) for v in self.shadow_win[row])
        if y1 > y0 and x1 > x0:
            a, b = self.shadow_off[row], self.shadow_off[row + 1]
            shadow = ((y0, y1, x0, x1),
                      (np.asarray(self.shade[a:b]).astype(np.float32) / np.float32(65535.0)).reshape(y1 - y0, x1 - x0))
        return layer, shadow
