"""The source set (backgrounds + foregrounds): deterministic generation and an on-disk cache.

A `SourceSpec` fixes everything that determines the sources' bytes. Its hash names the
cache folder `$MASKDEPTH_CACHE/sources/<hash>/` (default `~/.cache/maskdepth`), so a
changed spec (or generator version) builds a new set and an unchanged one is only loaded.
Foregrounds are cached once at their canonical resolution; backgrounds once per working
size (they are rendered at that size, which keeps their depth exact). Every cached file is
written atomically and recorded with its sha256, checked on load; a missing or damaged
file is rebuilt.

Ids: training backgrounds/foregrounds are 0..n-1; the held-out ones used only by the
`unseen` validation split follow them (n..n+n_unseen-1).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maskdepth.data.backgrounds import Background, background_params, render_background
from maskdepth.data.foregrounds import Foreground, foreground_params, render_foreground
from maskdepth.errors import MaskdepthError
from maskdepth.io import atomic_path, read_json, write_json
from maskdepth.progress import progress

# Bump when a change to the generators changes the sources' bytes: it invalidates caches.
GENERATOR_VERSION = "maskdepth-synth/2"
MIN_SIZE, MAX_SIZE = 16, 512


@dataclass(frozen=True)
class SourceSpec:
    seed: int = 0
    n_bg: int = 100
    n_fg: int = 100
    n_bg_unseen: int = 10
    n_fg_unseen: int = 10
    fg_resolution: int = 256
    version: str = GENERATOR_VERSION

    @property
    def n_bg_total(self) -> int:
        return self.n_bg + self.n_bg_unseen

    @property
    def n_fg_total(self) -> int:
        return self.n_fg + self.n_fg_unseen

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("MASKDEPTH_CACHE") or Path.home() / ".cache" / "maskdepth")


def check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise MaskdepthError(f"size={size!r}: must be an integer from {MIN_SIZE} to {MAX_SIZE} (pixels, square images)")
    return int(size)


@dataclass
class Sources:
    """Cached backgrounds (at one working size) and foregrounds (canonical resolution)."""

    spec: SourceSpec
    size: int
    bg_rgb: np.ndarray  # uint8 [n_bg_total, size, size, 3]
    bg_depth: np.ndarray  # float32 [n_bg_total, size, size], metres
    fg_atlas: np.ndarray  # uint8 [fg_resolution, sum of widths, 4], sprites side by side
    fg_offsets: np.ndarray  # int64 [n_fg_total + 1], column where each sprite starts
    backgrounds: list[Background] = field(repr=False)
    foregrounds: list[Foreground] = field(repr=False)
    folder: Path | None = None
    report: dict = field(default_factory=dict)

    def fg_rgba(self, fg_id: int) -> np.ndarray:
        """Sprite of foreground `fg_id`: uint8 [fg_resolution, W, 4]; foot point at (W / 2, bottom)."""
        return self.fg_atlas[:, self.fg_offsets[fg_id] : self.fg_offsets[fg_id + 1]]

    @property
    def nbytes(self) -> int:
        return self.bg_rgb.nbytes + self.bg_depth.nbytes + self.fg_atlas.nbytes


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save_arrays(folder: Path, name: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write name.<key>.npy files (byte-deterministic) then name.json with their sha256s."""
    hashes = {}
    for key, arr in arrays.items():
        path = folder / f"{name}.{key}.npy"
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
        hashes[key] = _sha256_file(path)
    write_json(folder / f"{name}.json", {**meta, "sha256": hashes})


def _load_arrays(folder: Path, name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays if every file is present and matches its recorded sha256, else None (rebuild)."""
    meta_path = folder / f"{name}.json"
    if not meta_path.is_file():
        return None
    try:
        recorded = read_json(meta_path)["sha256"]
        out = {}
        for key in keys:
            path = folder / f"{name}.{key}.npy"
            if not path.is_file() or _sha256_file(path) != recorded.get(key):
                return None
            out[key] = np.load(path, allow_pickle=False)
        return out
    except (OSError, ValueError, KeyError):
        return None


def render_foregrounds(spec: SourceSpec, foregrounds: list[Foreground]) -> dict[str, np.ndarray]:
    sprites = [render_foreground(fg, spec.fg_resolution)[0]
               for fg in progress(foregrounds, desc="foregrounds", total=len(foregrounds))]
    widths = np.array([s.shape[1] for s in sprites], dtype=np.int64)
    return {"rgba": np.concatenate(sprites, axis=1), "offsets": np.concatenate([[0], np.cumsum(widths)])}


def render_backgrounds(backgrounds: list[Background], size: int) -> dict[str, np.ndarray]:
    rgb = np.empty((len(backgrounds), size, size, 3), dtype=np.uint8)
    depth = np.empty((len(backgrounds), size, size), dtype=np.float32)
    for i, bg in enumerate(progress(backgrounds, desc=f"backgrounds {size}px", total=len(backgrounds))):
        rgb[i], depth[i] = render_background(bg, size)
    return {"rgb": rgb, "depth": depth}


_MEMO: dict[tuple, Sources] = {}


def load_sources(spec: SourceSpec | None = None, size: int = 64, cache_dir=None, *, rebuild: bool = False) -> Sources:
    """Load the sources from the cache, building what is missing or damaged.

    `report` on the result says what was built and how long it took. Results are also
    memoised in-process, so the train/seen/unseen datasets share one copy.
    """
    spec = spec or SourceSpec()
    size = check_size(size)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder.expanduser() / "sources" / spec.hash()
    key = (spec, size, str(folder))
    if not rebuild and key in _MEMO:
        memo = _MEMO[key]
        memo.report = {**memo.report, "built": [], "seconds": 0.0}  # nothing built by this call
        return memo
    start = time.perf_counter()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MaskdepthError(f"cache folder {folder}: cannot be created ({exc})") from exc
    if not (folder / "spec.json").is_file():
        write_json(folder / "spec.json", spec.to_dict())
    backgrounds = [background_params(spec.seed, i) for i in range(spec.n_bg_total)]
    foregrounds = [foreground_params(spec.seed, i) for i in range(spec.n_fg_total)]
    built = []
    fg_name = f"fg_r{spec.fg_resolution}"
    fg = None if rebuild else _load_arrays(folder, fg_name, ("rgba", "offsets"))
    if fg is None:
        fg = render_foregrounds(spec, foregrounds)
        _save_arrays(folder, fg_name, fg, {"count": spec.n_fg_total, "resolution": spec.fg_resolution})
        built.append("foregrounds")
    bg_name = f"bg_s{size:03d}"
    bg = None if rebuild else _load_arrays(folder, bg_name, ("rgb", "depth"))
    if bg is None:
        bg = render_backgrounds(backgrounds, size)
        _save_arrays(folder, bg_name, bg, {"count": spec.n_bg_total, "size": size})
        built.append("backgrounds")
    sources = Sources(
        spec=spec,
        size=size,
        bg_rgb=bg["rgb"],
        bg_depth=bg["depth"],
        fg_atlas=fg["rgba"],
        fg_offsets=fg["offsets"],
        backgrounds=backgrounds,
        foregrounds=foregrounds,
        folder=folder,
    )
    files = [p for p in folder.iterdir() if p.name.startswith((fg_name + ".", bg_name + "."))]
    sources.report = {
        "spec_hash": spec.hash(),
        "folder": str(folder),
        "built": built,
        "n_backgrounds": spec.n_bg_total,
        "n_foregrounds": spec.n_fg_total,
        "storage_bytes": sum(p.stat().st_size for p in files),
        "seconds": round(time.perf_counter() - start, 3),
        "sha256": {
            fg_name: read_json(folder / f"{fg_name}.json")["sha256"],
            bg_name: read_json(folder / f"{bg_name}.json")["sha256"],
        },
    }
    _MEMO[key] = sources
    return sources
