"""``python -m bench.ml.server``: the scoring app (``assets.ml.serving_api``) under uvicorn, as
``make serve-ml`` runs it, plus what the benchmark needs to explain its tail latencies:

- every response carries ``x-handled: <start> <end>`` (monotonic seconds around the app), so the
  client can split a slow request into queueing before the app, the app, and the way back;
- every garbage-collector pause of the server process is recorded and written, with the
  collection counts, to ``--record`` when the server stops (SIGTERM: uvicorn shuts down cleanly).

The instrumentation costs two clock reads per request and per collection.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import uvicorn

from bench.ml.stalls import HANDLED_HEADER, PauseRecorder

ASGIApp = Any


class HandledHeader:
    """ASGI middleware adding the app's start and end times to the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()

        async def send_with_times(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                stamp = f"{started:.6f} {time.monotonic():.6f}".encode()
                message["headers"] = [*message.get("headers", []), (HANDLED_HEADER.encode(), stamp)]
            await send(message)

        await self.app(scope, receive, send_with_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ml.server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True, help="GC pauses are written here")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="serve without gc.freeze() after the warm-up (the app before it had one)",
    )
    args = parser.parse_args(argv)

    from assets.ml.serving_api import create_app

    recorder = PauseRecorder("server").install()
    server = uvicorn.Server(
        uvicorn.Config(
            HandledHeader(create_app(freeze_gc=not args.no_gc_freeze)),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
        )
    )
    # uvicorn stops on SIGTERM, then raises the signal again with the handler found at start;
    # this one turns it into SystemExit, so the record below is still written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    finally:
        recorder.remove()
        args.record.write_text(
            json.dumps(
                {"summary": recorder.summary(), "pauses": [asdict(p) for p in recorder.pauses]}
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
