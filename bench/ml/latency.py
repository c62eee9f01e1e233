"""Latency measurement helpers: percentiles, and an open-loop client at a fixed request rate.

Open loop: request i is due at ``start + i / rate`` whatever happened to request i-1, and its
latency counts from when it was due. A closed loop (send, wait, send) slows down with the server
and hides queueing ("coordinated omission"); a fixed schedule does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latencies:
    """Milliseconds per request."""

    samples_ms: list[float]

    def percentile(self, p: float) -> float:
        return float(np.percentile(self.samples_ms, p)) if self.samples_ms else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.samples_ms),
            "p50_ms": round(self.percentile(50), 3),
            "p90_ms": round(self.percentile(90), 3),
            "p99_ms": round(self.percentile(99), 3),
            "max_ms": round(max(self.samples_ms), 3) if self.samples_ms else float("nan"),
        }


def time_calls(call: Callable[[int], object], count: int) -> Latencies:
    """Back-to-back calls ``call(i)``: the cost of one call, no queueing."""
    samples = []
    for i in range(count):
        began = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - began) * 1000)
    return Latencies(samples)


@dataclass(frozen=True)
class PacedRun:
    """An open-loop run: latency from each request's due time, and from its actual send."""

    from_due: Latencies
    service: Latencies
    errors: int
    achieved_rate: float


def paced(call: Callable[[int], bool], *, rate: float, seconds: float) -> PacedRun:
    """Call ``call(i)`` (True when the answer was right) at ``rate`` per second for ``seconds``."""
    total = int(rate * seconds)
    start = time.perf_counter()
    from_due, service = [], []
    errors = 0
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        ok = call(i)
        done = time.perf_counter()
        errors += not ok
        from_due.append((done - due) * 1000)
        service.append((done - sent) * 1000)
    elapsed = time.perf_counter() - start
    return PacedRun(Latencies(from_due), Latencies(service), errors, total / elapsed)
