"""Command line of the payments benchmarks; prints one JSON report and a summary."""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from bench.commerce.clock import Clock


def _progress(line: str) -> None:
    print(f"» {line}", file=sys.stderr, flush=True)


def _peak_rss_gib() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1024**3
    return {"peak_rss_gib": round(own, 3), "peak_rss_children_gib": round(children, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__)
    parser.add_argument("--duration", type=float, default=300.0, help="stream seconds (300)")
    parser.add_argument("--rate", type=float, default=50_000.0, help="producer events/s")
    parser.add_argument(
        "--users",
        type=int,
        default=10_000_000,
        help="cards in the stream (10 M: at 50k/s each card pays every 3 minutes or so; with "
        "1 M every card pays 3 times a minute and the velocity rule flags a third of the "
        "stream)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=800_000, help="most records per batch (800,000)"
    )
    parser.add_argument(
        "--min-batch",
        type=int,
        default=400_000,
        help="stream: request a run once this many records wait (400,000; 0: at once) ...",
    )
    parser.add_argument(
        "--max-wait", type=float, default=10.0, help="... or once the oldest waited this (10 s)"
    )
    parser.add_argument("--window-events", type=int, default=10_000_000)
    parser.add_argument(
        "--window-memory", default="4GB", help="DuckDB memory limit of the window job (4GB)"
    )
    parser.add_argument(
        "--consumer-events",
        type=int,
        default=0,
        help="also drain a pre-produced log of this many events, CPU per step (0: skip)",
    )
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-windows", action="store_true")
    parser.add_argument(
        "--home", type=Path, default=None, help="data home, kept (default: temp, removed)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary data home (7-8 GB at 5 minutes)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="bench-payments-"))
    try:
        return _run(args, home)
    finally:
        if args.home is None and not args.keep:
            # The 5-minute stream leaves 7-8 GB of log and warehouse: a benchmark run after
            # run must not fill the disk.
            shutil.rmtree(home, ignore_errors=True)
            _progress(f"removed {home} (--keep to keep it)")


def _run(args: argparse.Namespace, home: Path) -> int:
    clock = Clock(_progress)
    report: dict[str, object] = {"home": str(home)}
    if not args.skip_stream:
        from bench.payments.stream import run_stream

        report["stream"] = run_stream(
            home / "stream",
            duration_s=args.duration,
            rate=args.rate,
            users=args.users,
            max_batch=args.max_batch,
            min_batch=args.min_batch,
            max_wait_s=args.max_wait,
            clock=clock,
            progress=_progress,
        )
    if args.consumer_events:
        from bench.payments.consumer import run_consumer

        report["consumer"] = run_consumer(
            home / "consumer",
            events=args.consumer_events,
            users=args.users,
            rate=args.rate,
            max_batch=args.max_batch,
            threads=2,
            clock=clock,
            progress=_progress,
        )
    if not args.skip_windows:
        from bench.payments.windows import run_windows

        report["windows"] = run_windows(
            home / "windows",
            events=args.window_events,
            clock=clock,
            progress=_progress,
            memory_limit=args.window_memory,
        )
    report["phases_s"] = {k: round(v, 2) for k, v in clock.phases.items()}
    report.update(_peak_rss_gib())
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0
