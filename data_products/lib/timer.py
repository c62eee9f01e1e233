"""The one platform timer: wall and CPU seconds per named phase of a step.

Why a platform module: timing is a cross-cutting concern. Threaded through domain code as
``lap = time.perf_counter()`` pairs it hides the logic and every domain reports it in its own
shape; a step that wraps its phases in ``with timer.phase("name"):`` stays readable and reports
the same metadata as every other step (``metadata()``: rounded wall seconds per phase, the shape
the UI and the benchmarks read).

A phase entered several times (per chunk, or the two halves of a two-phase batch) accumulates.
Phases may run on other threads (a replica write overlapped with the main path): accumulation is
locked. CPU time is the process's (every thread, native libraries included): on shared cores wall
time measures the neighbours as much as the step, CPU time does not. For a phase overlapped with
another thread it counts both, so read it for phases on the main path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Wall and CPU seconds per phase, summed over every entry of the phase.

    >>> timer = PhaseTimer()
    >>> with timer.phase("read"):
    ...     pass
    >>> list(timer.metadata())
    ['read']
    """

    def __init__(self, *, digits: int = 3) -> None:
        self.digits = digits
        self._wall: dict[str, float] = {}
        self._cpu: dict[str, float] = {}
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block under ``name`` (added to earlier entries of ``name``), also when
        it raises: a failed step's metadata still shows where it spent its time."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent_wall, spent_cpu = time.perf_counter() - wall, time.process_time() - cpu
            with self._lock:
                self._wall[name] = self._wall.get(name, 0.0) + spent_wall
                self._cpu[name] = self._cpu.get(name, 0.0) + spent_cpu

    def seconds(self, name: str) -> float:
        """Unrounded wall seconds of ``name`` so far (0 if never entered)."""
        with self._lock:
            return self._wall.get(name, 0.0)

    def metadata(self) -> dict[str, float]:
        """Wall seconds per phase, rounded, in the order the phases were first entered."""
        with self._lock:
            return {k: round(v, self.digits) for k, v in self._wall.items()}

    def cpu_metadata(self) -> dict[str, float]:
        """CPU seconds per phase, rounded, in the order the phases were first entered."""
        with self._lock:
            return {k: round(v, self.digits) for k, v in self._cpu.items()}

    def wall_by_phase(self) -> dict[str, float]:
        """Unrounded wall seconds per phase (for rates computed from them)."""
        with self._lock:
            return dict(self._wall)

    def cpu_by_phase(self) -> dict[str, float]:
        """Unrounded CPU seconds per phase."""
        with self._lock:
            return dict(self._cpu)

    def elapsed(self) -> float:
        """Wall seconds since the timer was made (the whole step, between phases included)."""
        return time.perf_counter() - self._started

    def cpu_elapsed(self) -> float:
        """CPU seconds of the process since the timer was made."""
        return time.process_time() - self._cpu_started
