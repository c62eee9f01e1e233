"""The window job alone over N events: the platform's incremental path (every event new, so every
row is "touched") against the same features in one hand-written DuckDB query.

The events are generated in DuckDB (hash-based, deterministic): ``users`` cards over two hours of
event time, amounts 1-1000, twelve countries. Both results are compared row by row (floats to
1e-9 relative); the report says how many rows differ (expected: 0).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.commerce.clock import Clock

HAND_WRITTEN = """
CREATE OR REPLACE TABLE hand_features AS
SELECT event_id, user_id, event_time, date_trunc('hour', event_time) AS event_hour, amount, country,
    count(*) OVER m1 AS count_1m, sum(amount) OVER m1 AS sum_1m,
    sum(amount) OVER m1 / count(*) OVER m1 AS mean_1m, max(amount) OVER m1 AS max_1m,
    count(*) OVER m5 AS count_5m, sum(amount) OVER m5 AS sum_5m,
    sum(amount) OVER m5 / count(*) OVER m5 AS mean_5m, max(amount) OVER m5 AS max_5m,
    count(*) OVER h1 AS count_1h, sum(amount) OVER h1 AS sum_1h,
    sum(amount) OVER h1 / count(*) OVER h1 AS mean_1h, max(amount) OVER h1 AS max_1h,
    count(*) OVER hist AS history_count_1h,
    avg(amount::DOUBLE) OVER hist AS history_mean_1h,
    stddev_pop(amount::DOUBLE) OVER hist AS history_std_1h,
    CASE WHEN count(*) OVER hist >= 3 AND stddev_pop(amount::DOUBLE) OVER hist > 0
         THEN (amount - avg(amount::DOUBLE) OVER hist) / stddev_pop(amount::DOUBLE) OVER hist
    END AS zscore_1h,
    CASE WHEN lag(event_time) OVER seq >= event_time - INTERVAL 1 HOUR
         THEN lag(event_time) OVER seq END AS prev_event_time,
    CASE WHEN lag(event_time) OVER seq >= event_time - INTERVAL 1 HOUR
         THEN lag(country) OVER seq END AS prev_country,
    count(*) OVER (PARTITION BY user_id, country ORDER BY event_time
                   RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW
                   EXCLUDE CURRENT ROW) AS country_seen_1h
FROM payments_silver.transactions
WINDOW m1 AS (PARTITION BY user_id ORDER BY event_time
              RANGE BETWEEN INTERVAL 1 MINUTE PRECEDING AND CURRENT ROW),
       m5 AS (PARTITION BY user_id ORDER BY event_time
              RANGE BETWEEN INTERVAL 5 MINUTE PRECEDING AND CURRENT ROW),
       h1 AS (PARTITION BY user_id ORDER BY event_time
              RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
       hist AS (PARTITION BY user_id ORDER BY event_time
                RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW),
       seq AS (PARTITION BY user_id ORDER BY event_time, event_id)
"""

GENERATE = """
INSERT INTO payments_silver.transactions
SELECT 'e' || lpad(i::VARCHAR, 10, '0'),
       'u' || lpad((hash(i * 2 + 1) % $users)::VARCHAR, 7, '0'),
       'm' || lpad((hash(i * 3 + 2) % 5000)::VARCHAR, 5, '0'),
       (1 + (hash(i * 5 + 3) % 99900) / 100)::DECIMAL(18,2),
       'USD',
       ['US','CA','GB','FR','DE','ES','NL','JP','AU','BR','IN','SG']
           [(1 + hash(i * 7 + 4) % 12)::BIGINT],
       NULL,
       TIMESTAMP '2026-03-01' + to_milliseconds((i * 7200000 // $events)::BIGINT),
       date_trunc('hour',
                  TIMESTAMP '2026-03-01' + to_milliseconds((i * 7200000 // $events)::BIGINT)),
       (i % 4)::INTEGER, i, 'bench', TIMESTAMP '2026-03-01'
FROM range($events) t(i)
"""


def run_windows(
    home: Path,
    *,
    events: int,
    clock: Clock,
    progress: Callable[[str], None],
    memory_limit: str = "4GB",
) -> dict[str, Any]:
    import duckdb

    from assets.payments.tables import ensure_tables
    from assets.payments.windows import (
        delete_rewritten_features,
        recompute_features,
        store_features,
    )

    home.mkdir(parents=True, exist_ok=True)
    users = max(events // 50, 1)
    # A memory limit, as the stream's runs have: without one DuckDB sized its hash tables and
    # sorts to 80 % of RAM (11.3 GiB peak at 10 M events) instead of spilling.
    con = duckdb.connect(
        str(home / "windows.duckdb"),
        config={"memory_limit": memory_limit, "temp_directory": str(home / "spill")},
    )
    ensure_tables(con)
    timings: dict[str, float] = {}
    with clock.phase("windows: generate events"):
        con.execute(GENERATE, {"users": users, "events": events})
    with clock.phase("windows: platform incremental path"):
        # The window state is written by the platform path itself (after reading it), so its
        # insert is part of the platform's time.
        started = datetime.now()
        # Computed outside the transaction, written in it, as a stream batch does (see
        # ``batch.process_batch``).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _admitted AS "
            "SELECT event_id, user_id, event_time, amount, country "
            "FROM payments_silver.transactions"
        )
        rows = recompute_features(con, batch_id="bench", computed_at=started)
        con.begin()
        delete_rewritten_features(con)
        store_features(con)
        con.commit()
        timings["platform_s"] = (datetime.now() - started).total_seconds()
    progress(f"platform path: {rows:,} feature rows in {timings['platform_s']:.1f} s")
    with clock.phase("windows: hand-written DuckDB SQL"):
        started = datetime.now()
        con.execute(HAND_WRITTEN)
        timings["hand_written_s"] = (datetime.now() - started).total_seconds()
    progress(f"hand-written SQL: {timings['hand_written_s']:.1f} s")
    floats = ("mean_1m", "mean_5m", "mean_1h", "history_mean_1h", "history_std_1h", "zscore_1h")
    exact = (
        "user_id", "event_time", "event_hour", "amount", "country", "count_1m", "sum_1m", "max_1m",
        "count_5m", "sum_5m", "max_5m", "count_1h", "sum_1h", "max_1h", "history_count_1h",
        "prev_event_time", "prev_country", "country_seen_1h",
    )  # fmt: skip
    differs = " OR ".join(
        [f"p.{c} IS DISTINCT FROM h.{c}" for c in exact]
        + [
            f"abs(p.{c} - h.{c}) > 1e-9 * (1 + abs(h.{c})) OR (p.{c} IS NULL) <> (h.{c} IS NULL)"
            for c in floats
        ]
    )
    compared = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE {differs}),
                   (SELECT count(*) FROM hand_features)
            FROM payments_gold.user_window_features p JOIN hand_features h USING (event_id)"""
    ).fetchone()
    con.close()
    assert compared is not None
    joined, different, hand_rows = compared
    return {
        "events": events,
        "users": users,
        "memory_limit": memory_limit,
        "platform_s": round(timings["platform_s"], 2),
        "hand_written_s": round(timings["hand_written_s"], 2),
        "platform_over_hand_written": round(timings["platform_s"] / timings["hand_written_s"], 2),
        "platform_events_per_s": round(events / timings["platform_s"]),
        "rows_compared": joined,
        "rows_in_both": joined == rows == hand_rows,
        "rows_different": different,
    }
