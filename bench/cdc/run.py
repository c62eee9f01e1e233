"""The CDC benchmark (see ``bench.cdc``)."""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from pyiceberg.catalog.sql import SqlCatalog

from bench.commerce.clock import Clock
from data_products.lib.cdc.pipeline import MAX_BATCH_CHANGES, BatchResult, CdcPipeline
from data_products.lib.cdc.source import SlotSource
from resources.postgres_server import PostgresServer, free_port

TABLE_SQL = """
CREATE TABLE items (
    item_id bigint PRIMARY KEY,
    sku text NOT NULL,
    quantity integer NOT NULL,
    price numeric(12, 2) NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO items
SELECT g, 'SKU-' || g, (g % 500)::int, (g % 100000) / 100.0, now()
FROM generate_series(1, %(rows)s) g;
"""


def one_percent(conn: psycopg.Connection, rows: int, next_id: int) -> int:
    """1 % of the table in one transaction: 80 % updates, 10 % deletes, 10 % inserts."""
    n = rows // 100
    with conn.transaction():
        conn.execute(
            "UPDATE items SET quantity = quantity + 1, updated_at = now() WHERE item_id IN "
            "(SELECT (random() * %s)::bigint + 1 FROM generate_series(1, %s))",
            (rows - 1, n * 8 // 10),
        )
        conn.execute(
            "DELETE FROM items WHERE item_id IN "
            "(SELECT (random() * %s)::bigint + 1 FROM generate_series(1, %s))",
            (rows - 1, n // 10),
        )
        conn.execute(
            "INSERT INTO items SELECT g, 'NEW-' || g, 1, 9.99, now() "
            "FROM generate_series(%s, %s) g",
            (next_id, next_id + n // 10 - 1),
        )
    return next_id + n // 10


def sustained_writer(conninfo: str, rows: int, stop: threading.Event, per_tx: int) -> None:
    """Updates of random keys, ``per_tx`` per transaction, as fast as the machine allows."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not stop.is_set():
            conn.execute(
                "UPDATE items SET quantity = quantity + 1, updated_at = now() WHERE item_id IN "
                "(SELECT (random() * %s)::bigint + 1 FROM generate_series(1, %s))",
                (rows - 1, per_tx),
            )
            time.sleep(0.05)


SINKS = ("iceberg", "delta", "history")
STEPS = ("decode", "frames", *SINKS)


def cpu_now() -> float:
    """CPU seconds of this process so far (every thread: Arrow, pyiceberg and delta-rs write
    from worker threads). PostgreSQL's own CPU is in its server processes, not counted."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rates(changes: int, seconds: dict[str, float]) -> dict[str, float]:
    return {s: round(changes / seconds[s]) for s in SINKS if seconds.get(s)}


def summed(results: list[BatchResult], attribute: str) -> dict[str, float]:
    return {s: sum(getattr(r, attribute).get(s, 0.0) for r in results) for s in STEPS}


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wal_lag_bytes(conninfo: str, slot: str) -> int:
    """How far the slot's confirmed position is behind the WAL being written, in bytes."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cdc", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="sustained phase length")
    parser.add_argument("--per-tx", type=int, default=500, help="sustained: updates per tx")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=MAX_BATCH_CHANGES,
        help="sustained: cap of one micro-batch (pgoutput messages, whole transactions)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    clock = Clock(lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    work = Path(tempfile.mkdtemp(prefix="bench-cdc-"))
    work.chmod(0o755)
    server = PostgresServer(work / "pg", port=free_port(), database="bench")
    password = secrets.token_urlsafe(16)
    figures: dict[str, object] = {"rows": args.rows}
    try:
        with clock.phase("postgres start"):
            server.start(password)
        conninfo = server.conninfo(password)
        with psycopg.connect(conninfo, autocommit=True) as conn, clock.phase("load source"):
            conn.execute(TABLE_SQL.replace("%(rows)s", str(int(args.rows))))
        lake = work / "lake"
        lake.mkdir()
        pipeline = CdcPipeline(
            SlotSource(conninfo, slot="bench", publication="bench", tables=["items"]),
            SqlCatalog("bench", uri=f"sqlite:///{lake}/catalog.db", warehouse=str(lake / "ice")),
            str(lake / "delta"),
            lake / "state.json",
        )
        with clock.phase("initial snapshot"):
            snapshot = pipeline.ensure_started()
        assert snapshot is not None
        figures["snapshot_seconds"] = {k: round(v, 2) for k, v in snapshot.seconds.items()}

        with psycopg.connect(conninfo, autocommit=True) as conn:
            next_id = args.rows + 1
            batches = []
            for _ in range(2):
                next_id = one_percent(conn, args.rows, next_id)
                with clock.phase("1% batch"):
                    started, cpu = time.perf_counter(), cpu_now()
                    result = pipeline.run_batch()
                    wall, cpu = time.perf_counter() - started, cpu_now() - cpu
                batches.append(
                    {
                        "changes": result.changes,
                        "keys": result.tables["items"].keys,
                        "wall_seconds": round(wall, 2),
                        "cpu_seconds": round(cpu, 2),
                        "step_wall_seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                        "step_cpu_seconds": {k: round(v, 2) for k, v in result.cpu_seconds.items()},
                        "changes_per_second_wall": rates(result.changes, result.seconds),
                        "changes_per_second_cpu": rates(result.changes, result.cpu_seconds),
                    }
                )
            figures["one_percent_batches"] = batches

        stop = threading.Event()
        writer = threading.Thread(
            target=sustained_writer, args=(conninfo, args.rows, stop, args.per_tx), daemon=True
        )
        lag_seconds: list[float] = []
        lag_bytes: list[int] = []
        sustained: list[BatchResult] = []
        cpu = cpu_now()
        with clock.phase("sustained"):
            writer.start()
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline or writer.is_alive():
                if time.monotonic() >= deadline and not stop.is_set():
                    stop.set()
                    writer.join()
                lag_bytes.append(wal_lag_bytes(conninfo, "bench"))
                result = pipeline.run_batch(max_changes=args.max_batch)
                done = datetime.now(UTC)
                lag_seconds += [(done - t).total_seconds() for t in result.commit_times]
                if result.changes:
                    sustained.append(result)
                elif stop.is_set():
                    break
                else:
                    time.sleep(0.2)
        cpu = cpu_now() - cpu
        total = sum(r.changes for r in sustained)
        elapsed = clock.phases["sustained"]
        sizes = [r.changes for r in sustained]
        figures["sustained"] = {
            "seconds": round(elapsed, 1),
            "cpu_seconds": round(cpu, 1),
            "batches": len(sustained),
            "max_batch": args.max_batch,
            "batch_changes_p50": percentile(sizes, 0.5),
            "batch_changes_max": max(sizes, default=0),
            "changes": total,
            "end_to_end_changes_per_second": round(total / elapsed),
            "sink_changes_per_second_wall": rates(total, summed(sustained, "seconds")),
            "sink_changes_per_second_cpu": rates(total, summed(sustained, "cpu_seconds")),
            "step_cpu_seconds": {
                k: round(v, 1) for k, v in summed(sustained, "cpu_seconds").items()
            },
            "lag_p50_seconds": _round(percentile(lag_seconds, 0.5)),
            "lag_p95_seconds": _round(percentile(lag_seconds, 0.95)),
            "lag_p50_bytes": percentile(lag_bytes, 0.5),
            "lag_p95_bytes": percentile(lag_bytes, 0.95),
        }
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        figures["phases"] = {k: round(v, 1) for k, v in clock.phases.items()}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    figures["cpu_seconds_total"] = round(cpu_now(), 1)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
