"""How much work each figure does: the quick run (a few minutes) and the full run (about 40 min
on a 2-core CPU, of which figure 5 about 8 on a fresh cache, figure 7 about 22: two sides x 10
minutes of training plus scoring, and figure 8 a few).

Every figure reads its sizes from one `Settings`, so the two modes differ in one place and
the JSON records exactly what was measured.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

SIZE = 64  # the capstone's working size (the stages work at `maskdepth.plan.stages.WORKING_SIZE`)


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
    seed_steps: int = 1  # per repeat for the capstone's two ResNet U-Nets (~9 s per step at batch 32)
    loader_batches: int = 30  # batches per repeat when timing a loader alone
    matmul_n: int = 2048  # torch.mm size for the float32 peak
    matmul_calls: int = 10
    latency_calls: int = 50  # batch-1 forwards per repeat
    latency_batch: int = 64
    onnx_models: tuple[str, ...] = ("lean_unet", "resnet_unet", "default")
    compose_samples: int = 5000  # per repeat, on one core
    manifest_repeats: int = 3
    profile_steps: int = 2  # figure 3: profiled training steps per precision (after one warm-up step)
    # figure 7, quality at equal wall-clock: both sides train for the same budgets of training
    # time (s), scored at each and at `quality_curve_points` more times for the curve.
    quality_data: str = "1k"
    quality_budgets_s: tuple[float, ...] = (60.0, 120.0, 300.0, 600.0)
    quality_curve_points: int = 10
    quality_batch: int = 32  # both sides (the 1k stage's batch)
    # The capstone's constant lr: at 3e-3 (figure 1's old setting) its depth network saturated at one
    # end of the depth range within 3 steps (delta1 frozen); at 3e-4 it learns.
    quality_seed_lr: float = 3e-4
    quality_val_samples: int = 0  # seen samples scored (0: the whole split)
    quality_max_epochs: int = 0  # ours stops here at the latest (0: the recipe's epochs)
    # figure 8, predict end to end: photos (height, width) of about 0.3, 2 and 12 Mpx, this many
    # of each per call, `predict_repeats` calls; and one call over a folder of `predict_folder`
    # photos of `predict_folder_size` (0: none)
    predict_sizes: tuple[tuple[int, int], ...] = ((480, 640), (1224, 1632), (3000, 4000))
    predict_images: tuple[int, ...] = (8, 4, 2)
    predict_repeats: int = 3
    predict_folder: int = 200
    predict_folder_size: tuple[int, int] = (480, 640)
    gpu_steps: int = 20
    gpu_batch: int = 256  # the full stage's default batch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_settings(quick: bool, *, quality_minutes: tuple[float, ...] | None = None, threads: int | None = None,
                  **overrides) -> Settings:
    """Full-run sizes by default; `quick` shrinks every figure. `quality_minutes`: figure 7's
    training budgets; `overrides`: any other field (tests use tiny settings)."""
    threads = threads or cpu_cores()
    if quality_minutes is not None:
        overrides["quality_budgets_s"] = tuple(60.0 * float(m) for m in quality_minutes)
    if not quick:
        return Settings(quick=False, threads=threads, **overrides)
    return dataclasses.replace(Settings(
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
        onnx_models=("default",),
        compose_samples=1000,
        manifest_repeats=1,
        gpu_steps=5,
        profile_steps=1,
        quality_budgets_s=(5.0, 10.0, 20.0),  # seconds: the code runs, the numbers mean little
        quality_curve_points=4,
        quality_batch=8,
        quality_val_samples=64,
        predict_images=(2, 1, 1),
        predict_repeats=1,
        predict_folder=20,
    ), **overrides)
