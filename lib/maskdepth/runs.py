"""Run folders: where a training/validation run keeps everything it produces.

    outputs/<stage>/<run-name>/
        config.json  history.json  metrics.json  run.json  summary.md
        checkpoints/{last,best}.pt   tb/   figures/*.png   notebooks/*.ipynb   validation/<split>/

The default run name is a UTC timestamp plus a short hash of the parameters, so runs
sort by time and identical settings are easy to spot.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from maskdepth.errors import MaskdepthError

OUTPUTS_ENV = "MASKDEPTH_OUTPUTS"


def outputs_root() -> Path:
    """`$MASKDEPTH_OUTPUTS`, else ./outputs (the repo's git-ignored outputs folder)."""
    return Path(os.environ.get(OUTPUTS_ENV, "outputs"))


def params_hash(params: dict, length: int = 8) -> str:
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def new_run_name(params: dict) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{params_hash(params)}"


def check_run_name(name: str | None) -> str | None:
    """A run name is one folder name: no path separator, not . or .. (else the run would land
    outside OUT/STAGE and miss the "already exists" check)."""
    if name is None:
        return None
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name) \
            or "\0" in name:
        raise MaskdepthError(f"--name {name!r}: a run name is one folder name (no '/', not '.' or '..')")
    return name


def stage_label(data: str) -> str:
    """The outputs/ sub-folder for a dataset: the stage name, or the folder's name."""
    return Path(str(data)).name if os.sep in str(data) or Path(str(data)).is_dir() else str(data)


def is_run_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p / "config.json").is_file() and ((p / "metrics.json").is_file() or (p / "history.json").is_file())


def find_runs(paths, *, accept=None, markers: tuple[str, ...] = ("config.json",),
              what: str = "no config.json with metrics.json/history.json") -> list[Path]:
    """Run folders among `paths` (one path or several): each path is a run folder or a folder
    holding runs (any depth). `accept` decides what a run folder is (default `is_run_dir`), found
    inside a folder by one of its `markers` files; `what` says in the error what was looked for."""
    accept = accept or is_run_dir
    runs: list[Path] = []
    for raw in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(raw)
        if not p.is_dir():
            raise MaskdepthError(f"{p}: no such folder")
        if accept(p):
            runs.append(p)
            continue
        found = sorted({c.parent for marker in markers for c in p.rglob(marker) if accept(c.parent)})
        if not found:
            raise MaskdepthError(f"{p}: not a run folder ({what}) and holds no runs")
        runs.extend(found)
    return list(dict.fromkeys(runs))


def format_duration(seconds) -> str:
    """45s, 3m05s, 2h04m; "–" when unknown (run pages, reports and the trainer's console)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return "–"
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_params(n) -> str:
    """A parameter count: 1.65M, 101k; "–" when unknown."""
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"

