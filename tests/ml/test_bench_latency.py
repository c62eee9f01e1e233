"""The benchmark's load generator is open loop: a request that has not answered never holds back
the requests scheduled after it (so queueing shows in the latencies instead of hiding in a lower
request rate), and every request is counted with its outcome."""

from __future__ import annotations

import asyncio

from bench.ml.latency import paced

REQUESTS = 10


def test_later_requests_start_while_earlier_ones_are_unanswered() -> None:
    started: list[int] = []
    all_started = asyncio.Event()

    async def answers_only_once_all_have_started(i: int) -> bool:
        started.append(i)
        if len(started) == REQUESTS:
            all_started.set()
        # A closed loop would wait here forever for request i + 1: it is never sent.
        await all_started.wait()
        return i != 3

    async def run() -> object:
        return await asyncio.wait_for(
            paced(answers_only_once_all_have_started, rate=1000, seconds=REQUESTS / 1000),
            timeout=60,
        )

    result = asyncio.run(run())
    assert started == list(range(REQUESTS))
    assert result.errors == 1  # type: ignore[attr-defined]
    assert len(result.from_due.samples_ms) == REQUESTS  # type: ignore[attr-defined]
