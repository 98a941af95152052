"""How much work each figure does: the quick run (< 2 min) and the full run (< 15 min).

Every figure reads its sizes from one `Settings`, so the two modes differ in one place and
the JSON records exactly what was measured.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

SIZE = 64  # the seed's working size, and the 1k/full stages'


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    quick: bool
    threads: int  # torch intra-op threads = cores
    size: int = SIZE
    repeats: int = 5  # timed repeats per case (the median is reported)
    warmup: int = 1  # untimed rounds first
    batch: int = 32  # training batch for figures 1-3 (the 1k stage default)
    steps: int = 4  # optimizer steps per repeat for the fast models
    seed_steps: int = 1  # per repeat for the seed's two ResNet U-Nets (~9 s per step at batch 32)
    loader_batches: int = 30  # batches per repeat when timing a loader alone
    matmul_n: int = 2048  # torch.mm size for the float32 peak
    matmul_calls: int = 10
    latency_calls: int = 50  # batch-1 forwards per repeat
    latency_batch: int = 64
    onnx_models: tuple[str, ...] = ("lean_unet", "resnet_unet", "joint")
    compose_samples: int = 5000  # per repeat, on one core
    manifest_repeats: int = 3
    quality: bool = False  # figure 1's equal-wall-time training for validation quality
    quality_seconds: float = 120.0  # training budget per side
    gpu_steps: int = 20
    gpu_batch: int = 256  # the full stage's default batch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_settings(quick: bool, *, quality: bool = False, quality_seconds: float | None = None,
                  threads: int | None = None) -> Settings:
    """Full-run sizes by default; `quick` shrinks every figure (quality training is never quick)."""
    threads = threads or cpu_cores()
    if not quick:
        extra = {} if quality_seconds is None else {"quality_seconds": float(quality_seconds)}
        return Settings(quick=False, threads=threads, quality=quality, **extra)
    return Settings(
        quick=True,
        threads=threads,
        repeats=3,
        batch=8,
        steps=3,
        seed_steps=1,
        loader_batches=15,
        matmul_n=2048,
        matmul_calls=3,
        latency_calls=10,
        latency_batch=64,
        onnx_models=("joint",),
        compose_samples=1000,
        manifest_repeats=1,
        quality=False,
        gpu_steps=5,
    )
