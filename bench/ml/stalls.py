"""Stall attribution for the HTTP benchmark: which requests took longer than the target, and why.

A p99 alone cannot tell a slow server from a slow load generator, so the benchmark records, on
one clock (``time.monotonic``: CLOCK_MONOTONIC, shared by every process on Linux):

- per request, when it was due, when the client sent it, when the server's handler started and
  ended (the server reports both in the ``x-handled`` response header), and when the client had
  read the answer;
- in the server and in the client process, every garbage-collector pause (``gc.callbacks``).

:func:`attribute` then names one cause per slow request: a GC pause of either process that
overlaps it (the usual suspect for rare 100 ms stalls in a big Python heap), else the phase that
took longest (client sending late, queueing before the handler, the handler itself, the client
reading late).
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

HANDLED_HEADER = "x-handled"
"""``<handler start> <handler end>``, monotonic seconds, set by the instrumented server."""


@dataclass(frozen=True)
class Pause:
    """A garbage-collector pause in one process (monotonic seconds)."""

    process: str
    generation: int
    start: float
    end: float
    collected: int

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass
class PauseRecorder:
    """Records every GC pause of this process through ``gc.callbacks`` while installed.

    The callback costs two clock reads per collection; collections of the young generation
    happen every few hundred allocations, so only pauses above ``keep_ms`` are kept.
    """

    process: str
    keep_ms: float = 1.0
    pauses: list[Pause] = field(default_factory=list)
    counts: Counter[int] = field(default_factory=Counter)
    _began: float = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.monotonic()
            return
        ended = time.monotonic()
        generation = info.get("generation", -1)
        self.counts[generation] += 1
        if (ended - self._began) * 1000 >= self.keep_ms:
            self.pauses.append(
                Pause(self.process, generation, self._began, ended, info.get("collected", 0))
            )

    def install(self) -> PauseRecorder:
        gc.callbacks.append(self._callback)
        return self

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        return {
            "collections_by_generation": {str(g): n for g, n in sorted(self.counts.items())},
            "pauses_over_keep_ms": len(self.pauses),
            "longest_ms": round(max((p.ms for p in self.pauses), default=0.0), 2),
        }


@dataclass(frozen=True)
class RequestTimes:
    """One request on the shared monotonic clock; ``handler_*`` are None when not reported."""

    due: float
    sent: float
    done: float
    handler_start: float | None = None
    handler_end: float | None = None

    @property
    def latency_ms(self) -> float:
        return (self.done - self.due) * 1000

    def phases_ms(self) -> dict[str, float]:
        """Where the latency went: the four phases add up to ``latency_ms``."""
        if self.handler_start is None or self.handler_end is None:
            return {
                "client_send_late": (self.sent - self.due) * 1000,
                "server_round_trip": (self.done - self.sent) * 1000,
            }
        return {
            "client_send_late": (self.sent - self.due) * 1000,
            "before_handler": (self.handler_start - self.sent) * 1000,
            "handler": (self.handler_end - self.handler_start) * 1000,
            "after_handler": (self.done - self.handler_end) * 1000,
        }


def parse_handled(value: str | None) -> tuple[float | None, float | None]:
    if not value:
        return None, None
    start, end = value.split()
    return float(start), float(end)


def attribute(
    requests: list[RequestTimes], pauses: list[Pause], *, threshold_ms: float
) -> dict[str, Any]:
    """Count the requests slower than ``threshold_ms`` (from due time) by cause.

    A request's cause is a GC pause of at least ``threshold_ms / 5`` that overlaps its lifetime
    (``<process> gc gen<N>``; the longest such pause if several), else its longest phase. A pause
    that began before the request was due still counts: requests queue behind it.
    """
    slow = [r for r in requests if r.latency_ms > threshold_ms]
    if requests:  # pauses at start-up (imports, model load) are not the run's
        first, last = min(r.due for r in requests), max(r.done for r in requests)
        pauses = [p for p in pauses if p.end > first and p.start < last]
    significant = sorted(
        (p for p in pauses if p.ms >= threshold_ms / 5), key=lambda p: p.ms, reverse=True
    )
    causes: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for request in slow:
        overlapping = next(
            (p for p in significant if p.start < request.done and p.end > request.due), None
        )
        phases = request.phases_ms()
        if overlapping is not None:
            cause = f"{overlapping.process} gc gen{overlapping.generation}"
        else:
            cause = max(phases, key=lambda name: phases[name])
        causes[cause] += 1
        if len(examples) < 5:
            examples.append(
                {
                    "latency_ms": round(request.latency_ms, 1),
                    "cause": cause,
                    "phases_ms": {k: round(v, 1) for k, v in phases.items()},
                    "gc_pause": (
                        {**asdict(overlapping), "ms": round(overlapping.ms, 1)}
                        if overlapping
                        else None
                    ),
                }
            )
    return {
        "threshold_ms": threshold_ms,
        "requests": len(requests),
        "slow_requests": len(slow),
        "by_cause": dict(causes.most_common()),
        "gc_pauses_during_run": {
            f"{process} gen{generation}": {"count": len(found), "longest_ms": round(longest, 1)}
            for (process, generation), found in sorted(_group(pauses).items())
            for longest in [max(p.ms for p in found)]
        },
        "examples": examples,
    }


def _group(pauses: list[Pause]) -> dict[tuple[str, int], list[Pause]]:
    grouped: dict[tuple[str, int], list[Pause]] = {}
    for pause in pauses:
        grouped.setdefault((pause.process, pause.generation), []).append(pause)
    return grouped
