"""Timing helpers: warm-up, synchronise before reading the clock, median and p90."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timing:
    """Milliseconds over ``runs`` timed calls after ``warmup`` untimed ones."""

    median_ms: float
    p90_ms: float
    runs: int

    @property
    def fps(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")


def time_call(fn: Callable[[], object], runs: int = 10, warmup: int = 2,
              synchronize: Callable[[], None] | None = None) -> Timing:
    """Time ``fn``; ``synchronize`` (e.g. ``torch.cuda.synchronize``) runs before each clock read."""
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(1000.0 * (time.perf_counter() - start))
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
    return Timing(statistics.median(samples), p90, runs)


def timing_line(label: str, ms: dict[str, float], total: str = "total") -> str:
    """``label: stage ms, ..., total ms`` (stage names without a ``_ms`` suffix)."""
    return (f"{label}: " + ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in ms.items())
            + f", {total} {sum(ms.values()):.1f}")
