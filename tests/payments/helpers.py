"""Shared by the payments tests: a small stream in the log, batches driven without Dagster, an
independent brute-force computation of the window features, and table snapshots to compare."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import duckdb
import numpy as np
import polars as pl

from assets.payments.batch import BatchReport, process_batch
from assets.payments.produce import open_topic, produce
from assets.payments.reference import CONSUMER
from assets.payments.simulator import SimulatedStream, SimulationConfig, simulate
from data_products.lib.eventlog import EventLog, partition_for_key
from data_products.lib.microbatch import committed_ends, plan_batch

SMALL = SimulationConfig(
    events=3_000, users=60, events_per_second=2.0, late_share=0.1, max_delay_s=120.0, seed=11
)

# Up to five minutes late: some events go to late_events, the rest recompute windows.
LATE_STREAM = replace(SMALL, events=2_000, max_delay_s=300.0, duplicate_share=0.05, seed=5)


def produce_small(config: SimulationConfig = SMALL) -> tuple[EventLog, SimulatedStream]:
    log = open_topic()
    produce(config, log=log)
    return log, simulate(config)


def expected_late_ids(events: pl.DataFrame, partitions: int) -> set[str]:
    """Which deliveries the watermark must reject, computed from the delivered order alone:
    more than 120 s behind the largest earlier event time of the same log partition."""
    frame = events.with_columns(
        partition=pl.col("user_id").map_elements(
            lambda key: partition_for_key(key, partitions), return_dtype=pl.Int64
        )
    ).with_columns(stream_time=pl.col("event_time").cum_max().shift(1).over("partition"))
    # Re-sends advance stream time but are judged as duplicates, not as late events.
    first = frame.unique("event_id", keep="first", maintain_order=True)
    late = first.filter(pl.col("event_time") < pl.col("stream_time") - pl.duration(seconds=120))
    return set(late["event_id"])


def drain(con: duckdb.DuckDBPyConnection, log: EventLog, batch: int) -> list[BatchReport]:
    """Consume everything in batches of at most ``batch`` records (what the sensor plans)."""
    reports = []
    while True:
        committed = committed_ends(con, CONSUMER, log.topic, log.partitions)
        ranges = plan_batch(committed, log.end_offsets(), batch)
        if not ranges:
            return reports
        reports.append(
            process_batch(con, log, ranges, consumer=CONSUMER, batch_id=f"b{len(reports)}")
        )


# Every table a batch writes. Snapshots compare every column but the load-time ones (when and by
# which batch a row was written: ``_<event>_at`` and ``_batch_id``), so a new column is compared
# without editing this; lineage (the quarantine's ``_source_file``/``_source_line``) is data.
SNAPSHOT_TABLES = {
    "bronze": "payments_bronze.transactions",
    "silver": "payments_silver.transactions",
    "late": "payments_silver.late_events",
    "features": "payments_gold.user_window_features",
    "alerts": "payments_gold.fraud_alerts",
    "ledger": "payments_gold.ledger",
    "quarantine": "payments_silver.transactions_quarantine",
}
_ORDER = {
    "bronze": ["log_partition", "log_offset"],
    "quarantine": ["_source_file", "_source_line"],
    "ledger": ["event_id", "entry_no"],
}


_LOAD_TIME = "(starts_with(c, '_') AND (ends_with(c, '_at') OR c = '_batch_id'))"


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    out = {}
    for name, table in SNAPSHOT_TABLES.items():
        frame = con.execute(f"SELECT COLUMNS(c -> NOT {_LOAD_TIME}) FROM {table}").pl()
        assert isinstance(frame, pl.DataFrame)
        out[name] = frame.sort(_ORDER.get(name, ["event_id"]))
    return out


def brute_force_features(transactions: pl.DataFrame) -> dict[str, dict[str, object]]:
    """Window features by definition (windows.py's docstring), one card at a time, with exact
    cents for sums and numpy for the statistics; keyed by event id."""
    windows = {"1m": 60, "5m": 300, "1h": 3600}
    by_user: dict[str, list[tuple]] = defaultdict(list)
    for row in transactions.select(
        "event_id", "user_id", "event_time", "amount", "country"
    ).iter_rows():
        by_user[row[1]].append(row)
    expected: dict[str, dict[str, object]] = {}
    for rows in by_user.values():
        rows.sort(key=lambda r: (r[2], r[0]))
        for i, (event_id, _, t, amount, country) in enumerate(rows):
            cents = round(amount * 100)
            values: dict[str, object] = {}
            for w, seconds in windows.items():
                frame = [r for r in rows if t - timedelta(seconds=seconds) <= r[2] <= t]
                frame_cents = [round(r[3] * 100) for r in frame]
                values[f"count_{w}"] = len(frame)
                values[f"sum_{w}"] = Decimal(sum(frame_cents)) / 100
                values[f"mean_{w}"] = sum(frame_cents) / 100 / len(frame)
                values[f"max_{w}"] = Decimal(max(frame_cents)) / 100
            history = [r for r in rows if t - timedelta(hours=1) <= r[2] <= t and r[0] != event_id]
            amounts = np.array([r[3] for r in history])
            values["history_count_1h"] = len(history)
            values["history_mean_1h"] = float(amounts.mean()) if len(history) else None
            std = float(amounts.std()) if len(history) else None
            values["history_std_1h"] = std
            values["zscore_1h"] = (
                (cents / 100 - float(amounts.mean())) / std
                if len(history) >= 3 and std and std > 1e-12
                else None
            )
            previous = rows[i - 1] if i else None
            recent = previous is not None and previous[2] >= t - timedelta(hours=1)
            values["prev_event_time"] = previous[2] if recent else None
            values["prev_country"] = previous[4] if recent else None
            values["country_seen_1h"] = sum(1 for r in history if r[4] == country)
            expected[event_id] = values
    return expected
