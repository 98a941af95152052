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
    def eval_amp(self) -> bool:
        """Autocast for evaluation: CUDA only. On a CPU evaluation is cheap, so metrics and
        predictions stay exact float32 whatever the training precision."""
        return self.amp and self.device.type == "cuda"

    @property
    def amp_dtype(self) -> torch.dtype:
        return torch.float16 if self.device.type == "cuda" else torch.bfloat16


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_device(name: str = "auto", amp: bool | None = None) -> DeviceInfo:
    """`auto` -> CUDA if available, else CPU.

    AMP by default (`amp=None`): on CUDA, float16 autocast with a GradScaler; on a CPU, bf16
    autocast only where the CPU has native bf16 (AVX512-BF16/AMX): there it trained the joint
    model 1.9x faster at the same 1k quality (bench/ figure 3), while on AVX2-only CPUs bf16 is
    far slower than float32."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from maskdepth.errors import MaskdepthError

        raise MaskdepthError(f"--device {name}: CUDA is not available on this machine")
    if amp is None:
        use_amp = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
    else:
        use_amp = bool(amp)
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
