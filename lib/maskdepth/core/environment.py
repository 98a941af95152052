"""Where are we running? Colab, a GCP notebook, a rented GPU box or a local machine.

The setup notebook calls `environment_report()` and stores it in the run folder, so every
result can be traced to the hardware and versions that produced it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from maskdepth.core.device import cpu_has_fast_bf16, describe


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
    from maskdepth.core.resources import default_cache_dir

    return default_cache_dir()


def free_disk_gb(path: Path) -> float:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return round(shutil.disk_usage(p).free / 2**30, 1)


# How to get a GPU where there is none, per platform (detect_platform).
GPU_HOWTO = {
    "colab": "Colab: Runtime > Change runtime type > Hardware accelerator: a GPU (e.g. T4), then run the "
             "notebook again (the VM is replaced: files outside Drive are gone)",
    "gcp-notebook": "GCP: stop the instance and attach a GPU (Vertex AI Workbench: Hardware configuration > GPU), "
                    "or create the instance with one",
    "kaggle": "Kaggle: Settings > Accelerator > GPU",
}


def gpu_advice(report: dict | None = None) -> str:
    """One sentence: how to get a GPU here (or why torch does not see the one there is)."""
    report = report or {"platform": detect_platform(), **describe()}
    if report.get("cuda_available"):
        return ""
    if report.get("cuda") is None and shutil.which("nvidia-smi"):
        return ("this machine has an NVIDIA GPU but torch is a CPU build: install a CUDA build of torch "
                "(https://pytorch.org/get-started/locally/)")
    return GPU_HOWTO.get(report.get("platform", ""), "use a machine with an NVIDIA GPU and a CUDA build of torch "
                         "(https://pytorch.org/get-started/locally/)")


DRIVE_OUTPUTS = "/content/drive/MyDrive/maskdepth/outputs"


def use_outputs(folder: str | os.PathLike = DRIVE_OUTPUTS) -> Path:
    """Send every run of this session to `folder` (sets $MASKDEPTH_OUTPUTS, inherited by `!maskdepth`
    commands and the notebook kernels they start), so checkpoints outlive the VM. A folder under
    /content/drive is Google Drive: mounted first on Colab (it asks for permission once)."""
    from maskdepth.core.errors import MaskdepthError
    from maskdepth.core.runs import OUTPUTS_ENV

    folder = Path(folder)
    drive = Path("/content/drive")
    if drive in folder.parents and not (drive / "MyDrive").is_dir():
        try:
            from google.colab import drive as colab_drive
        except ImportError:
            raise MaskdepthError(f"{folder} is on Google Drive, which only Colab mounts; choose another folder") from None
        colab_drive.mount(str(drive))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[OUTPUTS_ENV] = str(folder)
    return folder


def git_commit() -> str | None:
    """The checkout's commit (None outside a git checkout): which code made a run."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict:
    """Versions of the packages a run's numbers depend on (None: not installed)."""
    from importlib import metadata

    names = ["maskdepth", "torch", "torchvision", "numpy", "pillow", "papermill", "matplotlib", "tensorboard",
             "torchmetrics"]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def device_summary() -> dict:
    """The device report with whether this CPU has native bf16 (where amp=auto times bf16 against float32)."""
    return {**describe(), "cpu_native_bf16": cpu_has_fast_bf16()}


def environment_report(run_dir: str | os.PathLike | None = None) -> dict:
    """Versions, hardware, data location and free disk; written to RUN/setup.json when run_dir is given."""
    report = {"platform": detect_platform(), **describe()}
    versions = package_versions()
    report.update({pkg: versions[pkg] for pkg in ("maskdepth", "torchvision", "papermill", "numpy")})
    cache = data_location()
    report["data_cache"] = str(cache)
    report["free_disk_gb"] = free_disk_gb(cache)
    report["warnings"] = []
    if report["free_disk_gb"] < 2:
        report["warnings"].append(f"only {report['free_disk_gb']} GB free at {cache}")
    if not report["cuda_available"]:
        report["warnings"].append(f"no CUDA GPU: fine for playground and 1k, the full stage wants a GPU. {gpu_advice(report)}")
    if run_dir:
        from maskdepth.core.fileio import write_json

        write_json(Path(run_dir) / "setup.json", report)
    return report
