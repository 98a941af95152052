"""Pick the compute device and what goes with it: CUDA when present (AMP, pinned memory), else CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    amp: bool  # mixed precision autocast (float16 on CUDA)
    pin_memory: bool

    @property
    def amp_dtype(self) -> torch.dtype:
        return torch.float16 if self.device.type == "cuda" else torch.bfloat16


def resolve_device(name: str = "auto", amp: bool | None = None) -> DeviceInfo:
    """`auto` -> CUDA if available, else CPU. AMP defaults to on for CUDA only (float16 +
    GradScaler). On a CPU, bf16 autocast depends on the hardware: far slower than float32 on
    AVX2-only CPUs, faster on CPUs with AVX512-BF16/AMX (see bench/ figure 3), and it costs a
    little precision, so it stays opt-in there (`amp=on`)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from maskdepth.errors import MaskdepthError

        raise MaskdepthError(f"--device {name}: CUDA is not available on this machine")
    use_amp = (device.type == "cuda") if amp is None else bool(amp)
    return DeviceInfo(device=device, amp=use_amp, pin_memory=device.type == "cuda")


def describe() -> dict:
    """Versions and hardware, for run.json and the setup notebook."""
    import platform

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["gpu_count"] = torch.cuda.device_count()
    return info
