"""Where are we running? Colab, a GCP notebook, a rented GPU box or a local machine.

The setup notebook calls `environment_report()` and stores it in the run folder, so every
result can be traced to the hardware and versions that produced it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from maskdepth.device import describe


def detect_platform() -> str:
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU"):
        return "colab"
    if os.environ.get("DL_ANACONDA_HOME") or os.environ.get("VERTEX_PRODUCT") or Path("/opt/deeplearning").exists():
        return "gcp-notebook"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        return "kaggle"
    try:
        import torch

        if torch.cuda.is_available():
            return "gpu-machine"
    except ImportError:
        pass
    return "local"


def data_location() -> Path:
    """Where generated sources are cached (`$MASKDEPTH_CACHE`, default ~/.cache/maskdepth)."""
    return Path(os.environ.get("MASKDEPTH_CACHE", Path.home() / ".cache" / "maskdepth"))


def free_disk_gb(path: Path) -> float:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return round(shutil.disk_usage(p).free / 2**30, 1)


def environment_report(run_dir: str | os.PathLike | None = None) -> dict:
    """Versions, hardware, data location and free disk; written to RUN/setup.json when run_dir is given."""
    import importlib.metadata as md

    report = {"platform": detect_platform(), **describe()}
    for pkg in ("maskdepth", "torchvision", "papermill", "numpy"):
        try:
            report[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            report[pkg] = None
    cache = data_location()
    report["data_cache"] = str(cache)
    report["free_disk_gb"] = free_disk_gb(cache)
    report["warnings"] = []
    if report["free_disk_gb"] < 2:
        report["warnings"].append(f"only {report['free_disk_gb']} GB free at {cache}")
    if not report["cuda_available"]:
        report["warnings"].append("no CUDA GPU: fine for playground and 1k, the full stage wants a GPU")
    if run_dir:
        from maskdepth.io import write_json

        write_json(Path(run_dir) / "setup.json", report)
    return report
