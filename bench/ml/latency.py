"""Latency measurement helpers: percentiles, and an open-loop client at a fixed request rate.

Open loop: request i is sent at ``start + i / rate`` whatever happened to request i-1 (requests
overlap when the server is slow), and its latency counts from when it was due. A closed loop
(send, wait, send) slows down with the server and hides queueing ("coordinated omission"); a
fixed schedule does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from bench.ml.stalls import HANDLED_HEADER, RequestTimes, parse_handled


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
class Answer:
    """A request's outcome, with the server's handler times when it reported them."""

    ok: bool
    handler_start: float | None = None
    handler_end: float | None = None


@dataclass(frozen=True)
class PacedRun:
    """An open-loop run: latency from each request's due time, and from its actual send, and
    every request's times on the monotonic clock (for stall attribution)."""

    from_due: Latencies
    service: Latencies
    errors: int
    achieved_rate: float
    requests: list[RequestTimes]


async def paced(
    call: Callable[[int], Awaitable[bool | Answer]], *, rate: float, seconds: float
) -> PacedRun:
    """Start ``call(i)`` (True, or an ``Answer``, when the answer was right) at ``rate`` per
    second for ``seconds``, each on schedule whether or not earlier ones have answered.

    Times come from ``loop.time()``, which is ``time.monotonic()``: the clock the server's
    ``x-handled`` header uses too."""
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    from_due: list[float] = []
    service: list[float] = []
    requests: list[RequestTimes] = []
    errors = 0

    async def one(i: int, due: float) -> None:
        nonlocal errors
        sent = loop.time()
        outcome = await call(i)
        done = loop.time()
        answer = outcome if isinstance(outcome, Answer) else Answer(bool(outcome))
        errors += not answer.ok
        from_due.append((done - due) * 1000)
        service.append((done - sent) * 1000)
        requests.append(RequestTimes(due, sent, done, answer.handler_start, answer.handler_end))

    tasks = []
    for i in range(total):
        due = start + i / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    return PacedRun(Latencies(from_due), Latencies(service), errors, total / elapsed, requests)


class KeepAliveClient:
    """A minimal HTTP/1.1 GET client over a pool of keep-alive connections.

    Why not httpx: its async client spends 2-3 ms of CPU per request here, as much as the
    server, so on 2 shared cores the load generator rather than the server set the figures
    (it could not even send 200 requests/s). This one writes a fixed request line and reads
    the status, the headers and ``Content-Length`` bytes, ~0.1 ms per request.
    """

    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port, self.connections = host, port, connections
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def __aenter__(self) -> KeepAliveClient:
        for _ in range(self.connections):
            self._idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()

    async def get(self, path: str) -> Answer:
        """Whether the status was 200, with the server's handler times if it sent them (the
        body is read and dropped)."""
        reader, writer = await self._idle.get()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = next(
                int(line.split(":", 1)[1])
                for line in lines[1:]
                if line.lower().startswith("content-length:")
            )
            handled = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in lines[1:]
                    if line.lower().startswith(f"{HANDLED_HEADER}:")
                ),
                None,
            )
            await reader.readexactly(length)
        finally:
            self._idle.put_nowait((reader, writer))
        return Answer(status == 200, *parse_handled(handled))
