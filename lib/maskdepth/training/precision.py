"""Whether bf16 autocast pays for this model on this CPU: timed, not guessed from CPU flags.

CPUs with the same flags have given opposite answers (docs/recipes.md, "Measurements behind
code choices"), so with `amp=auto` on a CPU with native bf16 the trainer times a few passes of
a copy of its model in both precisions and keeps float32 unless bf16 is clearly faster
(`MIN_SPEEDUP`; float32 is exact, so a near tie goes to it). The choice is saved in the
checkpoint (a resumed run stays bit-exact) and in `$MASKDEPTH_CACHE/precision.json` per (CPU,
threads, torch, model shape, input size, batch), so the same settings on the same machine choose
alike without timing again (delete the file to re-time). `amp=on|off` skips all of this.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

MIN_SPEEDUP = 1.15  # bf16 must be at least this much faster than float32 to be chosen
PROBE_BATCH = 32  # timing batch at most this large: the ratio, not the absolute time, is wanted
PROBE_STEPS = 3  # timed passes per precision (after one untimed), interleaved


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run trains in, and why (written to run.json, the checkpoint and the log)."""

    autocast: str  # "off" (float32), "bf16" (CPU; CUDA capability >= 8.0) or "float16" (older CUDA)
    reason: str
    float32_ms: float | None = None
    bf16_ms: float | None = None

    @property
    def enabled(self) -> bool:
        return self.autocast != "off"

    @property
    def label(self) -> str:
        return "float32" if self.autocast == "off" else f"{self.autocast} autocast"

    def to_dict(self) -> dict:
        return {"autocast": self.autocast, "reason": self.reason,
                "float32_ms_per_step": self.float32_ms, "bf16_ms_per_step": self.bf16_ms}


def prefers_bf16(float32_ms: float, bf16_ms: float, min_speedup: float = MIN_SPEEDUP) -> bool:
    """bf16 only when it is at least `min_speedup` times faster than float32."""
    return bf16_ms > 0 and float32_ms / bf16_ms >= min_speedup


def time_precisions(model: nn.Module, in_channels: int, size: int, batch: int, *, channels_last: bool,
                    steps: int = PROBE_STEPS) -> tuple[float, float]:
    """Median ms of one forward+backward pass in float32 and in bf16 autocast, on a copy of
    `model` (the model itself, its BatchNorm statistics and gradients are left untouched)."""
    probe = copy.deepcopy(model).train()
    x = torch.rand(max(1, min(batch, PROBE_BATCH)), in_channels, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def one_pass(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = probe(x)
        loss = sum(v.float().mean() for v in out.values())
        loss.backward()
        probe.zero_grad(set_to_none=True)
        return (time.perf_counter() - t0) * 1000.0

    one_pass(False), one_pass(True)  # warm-up: first-call allocations and kernel selection
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(steps):
        for bf16 in (False, True):
            times[bf16].append(one_pass(bf16))
    return statistics.median(times[False]), statistics.median(times[True])


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's description."""
    from maskdepth.core.device import cpu_info

    name = cpu_info()[0]
    if name:
        return name
    import platform

    return platform.processor() or platform.machine()


def probe_key(model: nn.Module, in_channels: int, size: int, batch: int, channels_last: bool) -> str:
    """What the timing depends on: this CPU and threads, torch, the model's layers and the input."""
    shapes = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    text = json.dumps([cpu_name(), torch.get_num_threads(), torch.__version__, type(model).__name__, shapes,
                       in_channels, size, min(batch, PROBE_BATCH), channels_last])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _cache_file():
    from maskdepth.core.resources import default_cache_dir

    return default_cache_dir() / "precision.json"


def _read_cache() -> dict:
    try:
        cache = json.loads(_cache_file().read_text(encoding="utf-8"))
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache yet, or unreadable: time again


def _remember(key: str, choice: PrecisionChoice) -> None:
    from maskdepth.core.fileio import write_json

    try:
        write_json(_cache_file(), {**_read_cache(), key: choice.to_dict()})
    except OSError:
        pass  # a read-only cache only costs a timing next time


def choose_cpu_precision(model: nn.Module, in_channels: int, size: int, batch: int, *,
                         channels_last: bool) -> PrecisionChoice:
    """`amp=auto` on a CPU: bf16 autocast if the CPU has native bf16 and it times clearly faster
    (remembered per machine and setting; see the module docstring)."""
    from maskdepth.core.device import cpu_has_fast_bf16

    if not cpu_has_fast_bf16():
        return PrecisionChoice("off", "this CPU has no native bf16 (AVX512-BF16/AMX): float32")
    key = probe_key(model, in_channels, size, batch, channels_last)
    known = _read_cache().get(key)
    if isinstance(known, dict) and known.get("autocast") in ("bf16", "off"):
        return PrecisionChoice(known["autocast"], f"{known.get('reason', '')} (remembered)",
                               known.get("float32_ms_per_step"), known.get("bf16_ms_per_step"))
    f32, bf16 = time_precisions(model, in_channels, size, batch, channels_last=channels_last)
    chosen = prefers_bf16(f32, bf16)
    verdict = (f"bf16 {f32 / bf16:.2f}x faster" if chosen else
               f"bf16 {f32 / bf16:.2f}x the float32 speed, below {MIN_SPEEDUP}x: float32")
    choice = PrecisionChoice("bf16" if chosen else "off",
                             f"timed on this CPU: float32 {f32:.0f} ms, bf16 {bf16:.0f} ms per pass; {verdict}",
                             round(f32, 2), round(bf16, 2))
    _remember(key, choice)
    return choice
