"""Harness pieces the implementations share: progress callbacks and phase timings. Not code
under test, so sharing it does not weaken the correctness guard's independence."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[str], None]


class Clock:
    """Phase timings (summed per name), reported in the result and as progress lines."""

    def __init__(self, progress: Progress) -> None:
        self.phases: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.phases[name] = self.phases.get(name, 0.0) + elapsed
        self.progress(f"{name}: {elapsed:.1f} s")
