"""Side-by-side timing: warm-up, then the median of several repeats.

Cases that are compared run *interleaved* (A, B, A, B, ...) in the same process, so a
neighbour that steals the CPU for a while slows both sides alike instead of biasing the
ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """Items per second over several repeats; `median` is the figure we report."""

    median: float
    rates: tuple[float, ...]
    items: int  # items per repeat

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were (0.1 = 10 %)."""
        return (max(self.rates) - min(self.rates)) / self.median if self.median else float("nan")

    def to_dict(self) -> dict:
        return {"median": self.median, "rates": list(self.rates), "items_per_repeat": self.items,
                "spread": self.spread}


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def compare_rates(cases: dict[str, Callable[[], int]], *, repeats: int, warmup: int = 1,
                  cuda: bool = False) -> dict[str, Rate]:
    """Run each case `warmup` times, then `repeats` rounds of all cases interleaved.

    A case is a callable doing one chunk of work and returning how many items (samples,
    images, FLOP, ...) it processed; the result is items per second per case.
    """
    for _ in range(warmup):
        for fn in cases.values():
            fn()
            _sync(cuda)
    rates: dict[str, list[float]] = {name: [] for name in cases}
    items: dict[str, int] = {}
    for _ in range(max(1, repeats)):
        for name, fn in cases.items():
            _sync(cuda)
            start = time.perf_counter()
            n = fn()
            _sync(cuda)
            seconds = time.perf_counter() - start
            items[name] = int(n)
            rates[name].append(n / max(seconds, 1e-12))
    return {name: Rate(statistics.median(r), tuple(r), items[name]) for name, r in rates.items()}


def measure_rate(fn: Callable[[], int], *, repeats: int, warmup: int = 1, cuda: bool = False) -> Rate:
    """`compare_rates` for a single case."""
    return compare_rates({"case": fn}, repeats=repeats, warmup=warmup, cuda=cuda)["case"]


def median_seconds(fn: Callable[[], object], *, repeats: int, warmup: int = 0) -> tuple[float, list[float]]:
    """Median wall time of `fn()` (and all the times), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times
