"""The CDC benchmark (see ``bench.cdc``)."""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from pyiceberg.catalog.sql import SqlCatalog

from bench.commerce.clock import Clock
from data_products.lib.cdc.pipeline import BatchResult, CdcPipeline
from data_products.lib.cdc.source import SlotSource
from data_products.lib.postgres_server import PostgresServer, free_port

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


def rates(result: BatchResult) -> dict[str, float]:
    return {
        sink: round(result.changes / seconds) if seconds else 0.0
        for sink, seconds in result.seconds.items()
        if sink in ("iceberg", "delta", "history")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cdc", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="sustained phase length")
    parser.add_argument("--per-tx", type=int, default=500, help="sustained: updates per tx")
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
                    started = time.perf_counter()
                    result = pipeline.run_batch()
                    wall = time.perf_counter() - started
                batches.append(
                    {
                        "changes": result.changes,
                        "keys": result.tables["items"].keys,
                        "wall_seconds": round(wall, 2),
                        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                        "changes_per_second": rates(result),
                    }
                )
            figures["one_percent_batches"] = batches

        stop = threading.Event()
        writer = threading.Thread(
            target=sustained_writer, args=(conninfo, args.rows, stop, args.per_tx), daemon=True
        )
        lags: list[float] = []
        sustained: list[BatchResult] = []
        with clock.phase("sustained"):
            writer.start()
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline or writer.is_alive():
                if time.monotonic() >= deadline and not stop.is_set():
                    stop.set()
                    writer.join()
                result = pipeline.run_batch(max_changes=100_000)
                done = datetime.now(UTC)
                lags += [(done - t).total_seconds() for t in result.commit_times]
                if result.changes:
                    sustained.append(result)
                elif stop.is_set():
                    break
                else:
                    time.sleep(0.2)
        total = sum(r.changes for r in sustained)
        per_sink = {
            sink: round(total / sum(r.seconds.get(sink, 0.0) for r in sustained))
            for sink in ("iceberg", "delta", "history")
        }
        elapsed = clock.phases["sustained"]
        figures["sustained"] = {
            "seconds": round(elapsed, 1),
            "batches": len(sustained),
            "changes": total,
            "end_to_end_changes_per_second": round(total / elapsed),
            "sink_changes_per_second": per_sink,
            "lag_p50_seconds": round(statistics.median(lags), 2) if lags else None,
            "lag_p95_seconds": round(statistics.quantiles(lags, n=20)[-1], 2)
            if len(lags) > 1
            else None,
        }
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        figures["phases"] = {k: round(v, 1) for k, v in clock.phases.items()}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0
