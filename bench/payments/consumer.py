"""The consumer alone: a pre-produced log drained in fixed-size batches, CPU per step.

Why apart from the stream benchmark: end to end, the producer and the consumer share the two
cores and Dagster's run overhead sits between batches, so a batch's wall time says little about
where its CPU goes. Here the log is written first (unpaced, event time at ``rate`` events per
second of event time, as the realtime producer stamps it), then drained by ``process_batch``
directly, and each step's CPU seconds (every thread of the process) are summed over batches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.commerce.clock import Clock


def run_consumer(
    home: Path,
    *,
    events: int,
    users: int,
    rate: float,
    max_batch: int,
    threads: int,
    clock: Clock,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_PRODUCTS_HOME"] = str(home)
    import duckdb

    from assets.payments.batch import process_batch
    from assets.payments.produce import open_topic, produce
    from assets.payments.reference import CONSUMER
    from assets.payments.simulator import SimulationConfig
    from data_products.lib.microbatch import committed_ends, plan_batch
    from data_products.lib.settings import get_settings

    log = open_topic()
    if sum(log.end_offsets().values()) == 0:
        with clock.phase("consumer: produce the log"):
            config = SimulationConfig(
                events=events, users=users, events_per_second=rate, id_prefix="c", seed=3
            )
            produce(config, truth=False, log=log)
    warehouse = get_settings().warehouse_path
    warehouse.unlink(missing_ok=True)
    config = {"threads": threads, "memory_limit": "3GB"}
    steps: dict[str, float] = {}
    steps_cpu: dict[str, float] = {}
    batches: list[dict[str, Any]] = []
    with clock.phase("consumer: drain"):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while True:
            # A connection per batch, as each run opens the warehouse (cold buffers).
            with duckdb.connect(str(warehouse), config=config) as con:
                committed = committed_ends(con, CONSUMER, log.topic, log.partitions)
                ranges = plan_batch(committed, log.end_offsets(), max_batch)
                if not ranges:
                    break
                report = process_batch(
                    con, log, ranges, consumer=CONSUMER, batch_id=f"b{len(batches)}"
                )
            for step, seconds in report.step_seconds.items():
                steps[step] = steps.get(step, 0.0) + seconds
            for step, seconds in report.step_cpu_seconds.items():
                steps_cpu[step] = steps_cpu.get(step, 0.0) + seconds
            batches.append(
                {
                    "records": report.records,
                    "seconds": round(report.seconds, 2),
                    "cpu_seconds": round(report.cpu_seconds, 2),
                    "feature_rows": report.feature_rows,
                }
            )
            progress(
                f"batch {len(batches)}: {report.records} records in {report.seconds:.2f} s "
                f"({report.cpu_seconds:.2f} CPU s)"
            )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    records = sum(b["records"] for b in batches)
    return {
        "events": events,
        "users": users,
        "max_batch": max_batch,
        "threads": threads,
        "records": records,
        "batches": len(batches),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "records_per_wall_s": round(records / wall) if wall else None,
        "records_per_cpu_s": round(records / cpu) if cpu else None,
        "step_wall_s": {k: round(v, 2) for k, v in sorted(steps.items(), key=lambda i: -i[1])},
        "step_cpu_s": {k: round(v, 2) for k, v in sorted(steps_cpu.items(), key=lambda i: -i[1])},
        "batch_log": batches,
    }
