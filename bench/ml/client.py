"""The paced HTTP load generator, runnable in a process of its own
(``python -m bench.ml.client``).

Why a process of its own: in the benchmark's process the client shares a heap of millions of
objects (Dagster, polars, the materialised run's results) with the garbage collector; a full
collection there stops the client's event loop, and every request due meanwhile is counted
late although the server never saw it. In its own process the heap is small and frozen.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.ml.latency import Answer, KeepAliveClient, PacedRun, paced
from bench.ml.stalls import PauseRecorder

CONNECTIONS = 16
WARM_UP_REQUESTS = 100


async def drive(url: str, ids: list[str], *, rate: float, seconds: float) -> PacedRun:
    """``GET /flights/{id}`` over ``ids`` at ``rate`` per second, after a warm-up."""
    host, port = url.removeprefix("http://").split(":")
    async with KeepAliveClient(host, int(port), connections=CONNECTIONS) as client:

        async def get(i: int) -> Answer:
            return await client.get(f"/flights/{ids[i % len(ids)]}")

        for i in range(WARM_UP_REQUESTS):  # connections, server caches
            await get(i)
        return await paced(get, rate=rate, seconds=seconds)


def run_recorded(
    url: str, ids: list[str], *, rate: float, seconds: float, freeze: bool
) -> tuple[PacedRun, PauseRecorder]:
    """:func:`drive` with this process's GC pauses recorded; ``freeze`` moves every object that
    exists before the run out of the collector's reach (``gc.freeze``)."""
    if freeze:
        gc.collect()
        gc.freeze()
    recorder = PauseRecorder("client").install()
    try:
        run = asyncio.run(drive(url, ids, rate=rate, seconds=seconds))
    finally:
        recorder.remove()
        if freeze:
            gc.unfreeze()
    return run, recorder


def to_json(run: PacedRun, recorder: PauseRecorder) -> dict[str, Any]:
    return {
        "errors": run.errors,
        "achieved_rate": run.achieved_rate,
        "requests": [asdict(r) for r in run.requests],
        "gc": recorder.summary(),
        "pauses": [asdict(p) for p in recorder.pauses],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ml.client", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ids", type=Path, required=True, help="flight ids, one a line")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    ids = args.ids.read_text().split()
    run, recorder = run_recorded(args.url, ids, rate=args.rate, seconds=args.seconds, freeze=True)
    args.out.write_text(json.dumps(to_json(run, recorder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
