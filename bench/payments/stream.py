"""End-to-end stream benchmark: producer process → event log → sensor ticks → batch runs → gold.

The producer (``python -m assets.payments.produce --realtime``) runs as its own process at the
target rate with event time = wall time. This process plays the daemon: it ticks the
``payments_stream`` sensor as soon as the previous run finished (0.2 s apart when idle) and
executes each requested run in-process, through the platform's policy (lineage hooks included)
on an ephemeral Dagster instance. Latency of an event = commit time of the batch that admitted it
minus its event time, over every admitted event.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.commerce.clock import Clock

BATCH_METRICS = (
    "records",
    "lag_offsets",
    "lag_seconds",
    "batch_seconds",
    "batch_cpu_seconds",
    "batch_latency_s",
    "step_seconds",
    "step_cpu_seconds",
)


def steady_state(
    batches: list[dict[str, Any]], *, warmup_s: float, until_s: float
) -> dict[str, Any]:
    """Throughput once the stream runs: the slope of committed records between the first batch
    that finished after ``warmup_s`` and the last that finished by ``until_s`` (the producer's
    end), the slope of appended records over the same span (what was offered: committed plus
    lag at each batch's end), and the largest lag in that span.

    Why next to records / elapsed: that ratio counts the start-up (imports, the first run) and
    the drain after the producer stopped, so even a consumer that keeps up with every batch
    reports less than the offered rate (3.0 M records offered at 50,000/s for 60 s, lag about
    5 s throughout: 41,328/s). And why the offered slope: on shared cores the producer itself
    falls behind its schedule and catches up at the end, so a committed slope below 50,000/s
    can be the producer's. A consumer sustains a rate when the committed slope equals the
    offered one and the lag stays bounded."""
    committed, marks = 0, []
    for b in batches:
        committed += b["records"]
        if warmup_s < b["at_s"] <= until_s:
            marks.append((b, committed))
    if len(marks) < 2:
        return {"steady_state_records_per_s": None, "steady_state_window_s": None}
    (first, first_committed), (last, last_committed) = marks[0], marks[-1]
    span = last["at_s"] - first["at_s"]
    offered = last_committed + last["lag_offsets"] - first_committed - first["lag_offsets"]
    window = [b for b, _ in marks]
    return {
        "steady_state_records_per_s": round((last_committed - first_committed) / span),
        "steady_state_offered_records_per_s": round(offered / span),
        "steady_state_window_s": [first["at_s"], last["at_s"]],
        "steady_state_batches": len(window) - 1,
        "steady_state_max_lag_s": max(b["lag_seconds"] for b in window),
        "steady_state_max_lag_offsets": max(b["lag_offsets"] for b in window),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stream(
    home: Path,
    *,
    duration_s: float,
    rate: float,
    users: int,
    max_batch: int,
    min_batch: int = 0,
    max_wait_s: float = 0.0,
    clock: Clock,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "DATA_PRODUCTS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "DATA_PRODUCTS_PAYMENTS_STREAM_MAX_BATCH": str(max_batch),
        "DATA_PRODUCTS_PAYMENTS_STREAM_MIN_BATCH": str(min_batch),
        "DATA_PRODUCTS_PAYMENTS_STREAM_MAX_WAIT": str(max_wait_s),
    }
    os.environ.update(env)
    import dagster as dg
    import duckdb

    from assets.payments.stream import payments_stream_batch
    from assets.payments.tables import BRONZE
    from data_products.cli.runs import tick_and_run
    from data_products.lib.discovery import apply_platform_policy
    from data_products.lib.settings import get_settings
    from resources.warehouse import WarehouseResource
    from sensors.payments_stream import payments_stream

    defs = apply_platform_policy(
        dg.Definitions(assets=[payments_stream_batch], sensors=[payments_stream]),
        # Two cores shared with the producer; a memory limit makes DuckDB spill instead of
        # growing the process past ~4 GiB on a large catch-up batch.
        resources={"warehouse": WarehouseResource(threads=2, memory_limit="3GB")},
    )
    instance = dg.DagsterInstance.ephemeral()
    children_before = _children_cpu()
    consumer_cpu_before = time.process_time()
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assets.payments.produce",
            "--realtime",
            f"--rate={rate}",
            f"--duration={duration_s}",
            f"--users={users}",
            "--no-truth",
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    started = time.time()
    batches: list[dict[str, Any]] = []
    cursor: str | None = None
    producer_done_s: float | None = None
    with clock.phase("stream: producer → sensor → gold"):
        while True:
            if producer_done_s is None and producer.poll() is not None:
                producer_done_s = time.time() - started
            runs, cursor = tick_and_run(defs, instance, "payments_stream", cursor=cursor)
            if runs:
                if not all(r.success for r in runs):
                    producer.kill()
                    raise RuntimeError(f"batch run failed: {runs[-1].failed_steps}")
                event = instance.get_latest_materialization_event(BRONZE.asset_key)
                assert event is not None and event.asset_materialization is not None
                meta = event.asset_materialization.metadata
                batch = {k: meta[k].value for k in BATCH_METRICS if k in meta}
                batch["at_s"] = round(time.time() - started, 1)
                batches.append(batch)
                progress(
                    f"batch {len(batches)} at {batch['at_s']} s: {batch['records']} records in "
                    f"{batch['batch_seconds']} s, lag {batch['lag_offsets']} offsets / "
                    f"{batch['lag_seconds']} s"
                )
                continue
            if producer.poll() is not None and (not batches or batches[-1]["lag_offsets"] == 0):
                break
            time.sleep(0.2)
    finished = time.time()
    consumer_cpu = time.process_time() - consumer_cpu_before
    produced = (producer.stdout.read() if producer.stdout else "").strip()
    producer.wait()
    producer_cpu = _children_cpu() - children_before
    if producer.returncode:
        raise RuntimeError(f"producer failed ({producer.returncode}): {produced}")
    with duckdb.connect(str(get_settings().warehouse_path), read_only=True) as con:
        row = con.execute(
            """WITH commits AS (
                   SELECT batch_id, max(committed_at) AS committed_at
                   FROM stream_state.committed_offsets GROUP BY batch_id)
               SELECT count(*), quantile_cont(epoch(c.committed_at - s.event_time), 0.5),
                      quantile_cont(epoch(c.committed_at - s.event_time), 0.95),
                      (SELECT count(*) FROM payments_bronze.transactions),
                      (SELECT count(*) FROM payments_gold.user_window_features),
                      (SELECT count(*) FROM payments_silver.late_events)
               FROM payments_silver.transactions s JOIN commits c ON s._batch_id = c.batch_id"""
        ).fetchone()
    assert row is not None
    admitted, p50, p95, records, features, late = row
    elapsed = finished - started
    busy = sum(b["batch_seconds"] for b in batches)
    cpu = sum(b.get("batch_cpu_seconds", 0.0) for b in batches)
    return {
        "duration_s": duration_s,
        "target_rate": rate,
        "users": users,
        "max_batch": max_batch,
        "min_batch": min_batch,
        "max_wait_s": max_wait_s,
        "producer": produced,
        "records": records,
        "admitted": admitted,
        "late_events": late,
        "feature_rows": features,
        "batches": len(batches),
        "elapsed_s": round(elapsed, 1),
        # Records / elapsed, start-up and the drain after the producer stopped included.
        "sustained_records_per_s": round(records / elapsed),
        "producer_done_s": round(producer_done_s or elapsed, 1),
        **steady_state(
            batches,
            warmup_s=max(10.0, 0.1 * duration_s),
            until_s=producer_done_s or elapsed,
        ),
        "batch_processing_s": round(busy, 1),
        "batch_cpu_s": round(cpu, 1),
        # CPU seconds (user + sys) over the whole stream phase: wall time on shared cores
        # measures the neighbours too.
        "consumer_cpu_s": round(consumer_cpu, 1),
        "producer_cpu_s": round(producer_cpu, 1),
        "consumer_cpu_us_per_record": round(consumer_cpu / records * 1e6, 1) if records else None,
        "consumer_capacity_records_per_s": round(records / busy) if busy else None,
        "latency_event_to_feature_p50_s": round(p50, 2),
        "latency_event_to_feature_p95_s": round(p95, 2),
        "max_lag_offsets": max((b["lag_offsets"] for b in batches), default=0),
        "max_lag_seconds": max((b["lag_seconds"] for b in batches), default=0),
        "batch_log": batches,
    }
