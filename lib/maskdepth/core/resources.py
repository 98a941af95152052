"""Files `maskdepth run` needs beside the code: the notebooks and the data_manifests/ specs.

In a checkout they live at the repository root (`notebooks/`, `data_manifests/`) and are read
from there, so an edit is seen at once. A wheel (`pip install .`, `pip install git+URL`)
carries copies as package data in `maskdepth/_resources/<folder>/`: `setup.py` copies the
files named by `SHIPPED` at build time, and `resource_dir` falls back to them when there is
no checkout around the code. This module is read by `setup.py` too: standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

# folder at the repository root -> the file patterns a wheel carries (nothing else is needed at run time)
SHIPPED: dict[str, tuple[str, ...]] = {
    "notebooks": ("*.ipynb",),
    "data_manifests": ("spec.json", "*.csv", "README.md"),
}
PACKAGED = "_resources"  # maskdepth/_resources/<folder>/ inside an installed package

_HERE = Path(__file__).resolve().parents[1]  # .../maskdepth (this file is maskdepth/core/resources.py)


def checkout_root() -> Path | None:
    """The repository this code runs from (lib/maskdepth/ under it), or None for an installed copy."""
    root = _HERE.parents[1]
    if _HERE.parent.name == "lib" and (root / "pyproject.toml").is_file():
        return root
    return None


def packaged_dir(folder: str) -> Path:
    return _HERE / PACKAGED / folder


def resource_dir(folder: str) -> Path:
    """`folder` (a key of SHIPPED) of the checkout when there is one, else the installed package's
    copy; when neither exists, the checkout path (so that messages name where it was looked for)."""
    if folder not in SHIPPED:
        raise KeyError(folder)
    root = checkout_root()
    if root is not None and (root / folder).is_dir():
        return root / folder
    packaged = packaged_dir(folder)
    if packaged.is_dir():
        return packaged
    return (root or _HERE.parents[1]) / folder


def shipped_files(root: Path) -> list[Path]:
    """The files under `root` (a checkout) that a wheel carries, relative to root, sorted."""
    found: set[Path] = set()
    for folder, patterns in SHIPPED.items():
        for pattern in patterns:
            found.update(p.relative_to(root) for p in (root / folder).glob(pattern) if p.is_file())
    return sorted(found)


def default_cache_dir() -> Path:
    """Where rendered views, traced objects and per-machine choices are cached ($MASKDEPTH_CACHE)."""
    return Path(os.environ.get("MASKDEPTH_CACHE") or Path.home() / ".cache" / "maskdepth")
