"""Pick the compute device and what goes with it: CUDA when present (AMP, pinned memory), else CPU."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import torch

from maskdepth.core.errors import MaskdepthError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
# CUDA autocast: bf16 from compute capability 8.0 (Ampere: A100, A10, L4, RTX 30xx; then Hopper,
# Ada, ...), whose tensor cores run it at the float16 rate and whose exponent range needs no
# GradScaler; float16 with a GradScaler before (T4, V100, P100).
CUDA_BF16_CAPABILITY = (8, 0)


def cuda_autocast_dtype(capability: tuple[int, int]) -> torch.dtype:
    """The one rule for CUDA mixed precision: bf16 on compute capability >= 8.0, else float16."""
    return torch.bfloat16 if tuple(capability) >= CUDA_BF16_CAPABILITY else torch.float16


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    amp: bool  # mixed precision autocast (CUDA: bf16 or float16 by `cuda_autocast_dtype`; CPU: bf16)
    pin_memory: bool
    cuda_bf16: bool = False  # a CUDA device of compute capability >= 8.0: autocast in bf16

    @property
    def grad_scaler(self) -> bool:
        """A GradScaler only for float16 autocast (bf16 has float32's exponent range)."""
        return self.amp and self.amp_dtype == torch.float16

    @property
    def eval_amp(self) -> bool:
        """Autocast for evaluation: CUDA only. On a CPU evaluation is cheap, so metrics and
        predictions stay exact float32 whatever the training precision."""
        return self.amp and self.device.type == "cuda"

    @property
    def amp_dtype(self) -> torch.dtype:
        if self.device.type == "cuda":
            return torch.bfloat16 if self.cuda_bf16 else torch.float16
        return torch.bfloat16

    @property
    def amp_name(self) -> str:
        """What autocast runs in: "off", "bf16" or "float16"."""
        return "off" if not self.amp else "bf16" if self.amp_dtype == torch.bfloat16 else "float16"


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, instruction-set flags) of this CPU from /proc/cpuinfo; ("", empty) where there
    is none (macOS, Windows)."""
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = frozenset(line.split(":", 1)[1].split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 instructions (AVX512-BF16 or AMX), read from /proc/cpuinfo."""
    return bool(cpu_info()[1] & {"avx512_bf16", "amx_bf16"})


def check_device_name(name) -> str:
    """The device name, if it is one of auto | cpu | cuda | cuda:N | mps; else a one-line error."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", name.strip().lower()):
        raise MaskdepthError(f"--device {name!r}: not a device this tool runs on; use {DEVICE_NAMES}")
    return name.strip().lower()


def resolve_device(name: str = "auto", amp: bool | None = None) -> DeviceInfo:
    """`auto` -> CUDA if available, else CPU.

    AMP by default (`amp=None`): on CUDA, bf16 autocast on compute capability >= 8.0 and float16
    with a GradScaler before (`cuda_autocast_dtype`); on a CPU float32
    here. Whether bf16 autocast pays on a CPU depends on the CPU and the model, not on its
    flags alone, so the trainer times it (`maskdepth.training.precision`) and turns it on."""
    name = check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MaskdepthError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise MaskdepthError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise MaskdepthError(f"--device {name}: Apple MPS is not available on this machine")
    if amp is None:
        use_amp = device.type == "cuda"
    else:
        use_amp = bool(amp)
    bf16 = device.type == "cuda" and cuda_autocast_dtype(torch.cuda.get_device_capability(device)) == torch.bfloat16
    return DeviceInfo(device=device, amp=use_amp, pin_memory=device.type == "cuda", cuda_bf16=bf16)


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
