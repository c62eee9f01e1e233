"""One implementation in its own process: ``python -m bench.commerce.child <name> ...``.

A process per implementation isolates peak memory (the parent reads each child's own maximum
resident set) and start-up costs. The child writes ``runs/<name>/result.json`` with its own view of
where the time went; the parent measures the wall time and memory from outside.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bench.commerce.layout import IMPLEMENTATIONS, BenchLayout, BenchRange
from bench.commerce.measure import PROGRESS_MARK

Runner = Callable[[BenchLayout, BenchRange, Callable[[str], None]], dict[str, Any]]


def _runner(name: str) -> Runner:
    # Imported here so each process loads only its own implementation's libraries: the pandas
    # process must not pay for (or hold memory of) dagster, and the reverse.
    if name == "platform":
        from bench.commerce import impl_platform

        return impl_platform.run
    if name == "duckdb":
        from bench.commerce import impl_duckdb

        return impl_duckdb.run
    if name == "pandas":
        from bench.commerce import impl_pandas

        return impl_pandas.run
    raise ValueError(f"unknown implementation {name!r}: {IMPLEMENTATIONS}")


def _progress(message: str) -> None:
    print(f"{PROGRESS_MARK}{message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.commerce.child")
    parser.add_argument("implementation", choices=IMPLEMENTATIONS)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    args = parser.parse_args(argv)
    layout = BenchLayout(args.home.resolve())
    bench_range = BenchRange(args.start, args.days)
    started = time.perf_counter()
    try:
        result = _runner(args.implementation)(layout, bench_range, _progress)
    except Exception as exc:  # reported to the parent, which prints it and fails the benchmark
        traceback.print_exc()
        result = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
    result.setdefault("work_s", time.perf_counter() - started)
    result["implementation"] = args.implementation
    path = layout.result_path(args.implementation)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result.get("success") else 1


if __name__ == "__main__":
    sys.exit(main())
