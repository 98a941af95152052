"""The source set: scenes (backgrounds), objects (foregrounds), and an on-disk cache of views.

A `SourceSpec` fixes everything that determines the sources' bytes; its hash names the cache folder
(`$MASKDEPTH_CACHE/sources/<hash>/`), so a changed spec or generator version builds a new set and an
unchanged one is only loaded. Scenes and objects are cheap parameter draws; ray-tracing a view is
what costs time, so views are rendered on first use, in parallel, and cached one file per view
(atomic; a damaged file is re-rendered). Ids: training first, then `unseen`, then `ood`.
Details: docs/world.md, "The source set and its view cache"."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from maskdepth.core.errors import MaskdepthError
from maskdepth.core.fileio import atomic_path
from maskdepth.core.progress import progress
from maskdepth.core.resources import default_cache_dir
from maskdepth.world.backgrounds import Background, background_params, render_view, view_light
from maskdepth.world.camera import HEIGHT_MIN, TRAIN_HEIGHT_MAX, Camera, camera_at, draw_cameras
from maskdepth.world.foregrounds import Foreground, foreground_params

# Bump when a change to the generators changes the sources' bytes: it invalidates caches.
GENERATOR_VERSION = "maskdepth-synth/5"
MIN_SIZE, MAX_SIZE = 16, 512


@dataclass(frozen=True)
class SourceSpec:
    seed: int = 0
    n_bg: int = 100
    n_fg: int = 100
    n_bg_unseen: int = 10
    n_fg_unseen: int = 10
    n_bg_ood: int = 10
    n_fg_ood: int = 10
    version: str = GENERATOR_VERSION

    @property
    def first_ood_bg(self) -> int:
        return self.n_bg + self.n_bg_unseen

    @property
    def first_ood_fg(self) -> int:
        return self.n_fg + self.n_fg_unseen

    @property
    def n_bg_total(self) -> int:
        return self.n_bg + self.n_bg_unseen + self.n_bg_ood

    @property
    def n_fg_total(self) -> int:
        return self.n_fg + self.n_fg_unseen + self.n_fg_ood

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise MaskdepthError(f"size={size!r}: must be an integer from {MIN_SIZE} to {MAX_SIZE} (pixels, square images)")
    return int(size)


@lru_cache(maxsize=8)
def scene_table(spec: SourceSpec) -> tuple[Background, ...]:
    """Every background of the spec (training, unseen, ood), drawn once per process."""
    return tuple(background_params(spec.seed, i, ood=i >= spec.first_ood_bg) for i in range(spec.n_bg_total))


@lru_cache(maxsize=8)
def object_table(spec: SourceSpec) -> tuple[Foreground, ...]:
    """Every foreground of the spec (training, unseen, ood), drawn once per process."""
    return tuple(foreground_params(spec.seed, i, ood=i >= spec.first_ood_fg) for i in range(spec.n_fg_total))


# A scene with its own camera height range keeps the floor in view: the bottom row's ray meets
# the floor within this share of the walkable floor's depth (lower cameras where it would not).
FLOOR_IN_VIEW = 0.6
CAMERA_HEIGHT_FLOOR = 0.25


def view_cameras(spec: SourceSpec, bg, placement) -> dict[str, np.ndarray]:
    """Camera parameters of views (bg, placement) (vectorised); `x` in metres inside the scene.

    A scene of its own scale (`Background.cam_height`: a desk, a close-up) maps the drawn height
    range HEIGHT_MIN..TRAIN_HEIGHT_MAX linearly onto its own (the held-out high cameras above it
    alike), then lowers the camera where the floor in front of its far clutter would not be in view."""
    bg = np.asarray(bg, dtype=np.int64)
    params = draw_cameras(spec.seed, bg, placement, ood=bg >= spec.first_ood_bg)
    scenes = scene_table(spec)
    lo = np.array([s.cam_x[0] for s in scenes])[bg]
    hi = np.array([s.cam_x[1] for s in scenes])[bg]
    params["x"] = lo + (hi - lo) * params["x"]
    own = np.array([s.cam_height is not None for s in scenes])[bg]
    if own.any():
        h_lo = np.array([(s.cam_height or (HEIGHT_MIN, 0.0))[0] for s in scenes])[bg]
        h_hi = np.array([(s.cam_height or (0.0, TRAIN_HEIGHT_MAX))[1] for s in scenes])[bg]
        walk_z = np.array([s.walk_z for s in scenes])[bg]
        frac = (params["height"] - HEIGHT_MIN) / (TRAIN_HEIGHT_MAX - HEIGHT_MIN)
        height = h_lo + (h_hi - h_lo) * frac
        # tan(pitch + half the vertical field of view), by the tangent addition formula
        tp, tf = params["sin_pitch"] / params["cos_pitch"], 0.5 / params["focal"]
        den = 1.0 - tp * tf
        with np.errstate(divide="ignore"):
            limit = np.where(den > 0.0, FLOOR_IN_VIEW * walk_z * (tp + tf) / np.where(den > 0.0, den, 1.0), np.inf)
        height = np.minimum(height, np.maximum(limit, CAMERA_HEIGHT_FLOOR))
        params["height"] = np.where(own, height, params["height"])
    return params


def view_camera(spec: SourceSpec, bg: int, placement: int) -> Camera:
    params = view_cameras(spec, np.array([bg]), np.array([placement]))
    return camera_at(params, 0, float(params["x"][0]))


def render_one_view(spec: SourceSpec, bg: int, placement: int, size: int) -> dict[str, np.ndarray]:
    """rgb uint8 [S,S,3], depth float32 [S,S] (metres), ground bool [S,S] of view (bg, placement)."""
    scene = scene_table(spec)[bg]
    return render_view(scene, view_camera(spec, bg, placement), size, view_light(scene, spec.seed, placement))


def _view_file(folder: Path, bg: int, placement: int) -> Path:
    return folder / f"b{bg:04d}_p{placement:03d}.npz"


def _write_view(args) -> None:
    spec, bg, placement, size, folder = args
    view = render_one_view(spec, bg, placement, size)
    with atomic_path(_view_file(Path(folder), bg, placement)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, rgb=view["rgb"], depth=view["depth"], ground=view["ground"])


def _read_view(path: Path, size: int) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            view = {k: z[k] for k in ("rgb", "depth", "ground")}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if view["rgb"].shape != (size, size, 3) or view["depth"].shape != (size, size):
        return None
    return view


@dataclass
class Sources:
    """Scenes, objects and the views of a stage at one working size."""

    spec: SourceSpec
    size: int
    backgrounds: tuple[Background, ...] = field(repr=False)
    foregrounds: tuple[Foreground, ...] = field(repr=False)
    folder: Path | None = None
    report: dict = field(default_factory=dict)

    def views(self, bg, placement, workers: int | None = None) -> dict[str, np.ndarray]:
        """Stacked views of the (bg, placement) pairs: rgb [N,S,S,3] uint8, depth [N,S,S], ground [N,S,S].

        Missing views are rendered (in `workers` processes, default: the CPU count, when
        there are more than a few) and cached; `report` says how many and how long."""
        start = time.perf_counter()
        pairs = list(zip(np.asarray(bg).tolist(), np.asarray(placement).tolist()))
        folder = self.folder
        views = [_read_view(_view_file(folder, b, p), self.size) for b, p in pairs]
        missing = [(b, p) for (b, p), v in zip(pairs, views) if v is None]
        if missing:
            jobs = [(self.spec, b, p, self.size, str(folder)) for b, p in missing]
            workers = workers or min(os.cpu_count() or 1, 8)
            in_worker = multiprocessing.current_process().daemon  # a pool's worker may not start a pool
            if workers > 1 and len(jobs) > 8 and not in_worker and "fork" in multiprocessing.get_all_start_methods():
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    for _ in progress(pool.imap_unordered(_write_view, jobs, chunksize=4), total=len(jobs),
                                      desc=f"views {self.size}px"):
                        pass
            else:
                for job in progress(jobs, total=len(jobs), desc=f"views {self.size}px"):
                    _write_view(job)
            views = [v if v is not None else _read_view(_view_file(folder, b, p), self.size)
                     for (b, p), v in zip(pairs, views)]
            if any(v is None for v in views):
                raise MaskdepthError(f"cache folder {folder}: rendered views cannot be read back (disk full?)")
        self.report = {**self.report, "views": len(pairs), "views_built": len(missing),
                       "seconds": round(time.perf_counter() - start, 3)}
        n = len(views)
        out = {
            "rgb": np.empty((n, self.size, self.size, 3), dtype=np.uint8),
            "depth": np.empty((n, self.size, self.size), dtype=np.float32),
            "ground": np.empty((n, self.size, self.size), dtype=bool),
        }
        for i, v in enumerate(views):
            for key in out:
                out[key][i] = v[key]
        return out


def load_sources(spec: SourceSpec | None = None, size: int = 64, cache_dir=None) -> Sources:
    """The source set at a working size; views are rendered on demand by `Sources.views`."""
    spec = spec or SourceSpec()
    size = check_size(size)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root.expanduser() / "sources" / spec.hash() / f"views_s{size:03d}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MaskdepthError(f"cache folder {folder}: cannot be created ({exc})") from exc
    return Sources(spec, size, scene_table(spec), object_table(spec), folder,
                   report={"spec_hash": spec.hash(), "folder": str(folder)})
