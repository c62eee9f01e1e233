"""Window features equal a brute-force computation from the ground truth, for every card, event
and window, on a stream with delays of up to two minutes and re-sends, consumed in small batches
(so late events land in later batches and must recompute earlier rows). Which events the
watermark rejects is derived independently, from the delivered order."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.payments import alerts, windows
from assets.payments.windows import full_features_sql
from data_products.lib.settings import get_settings
from tests.payments.helpers import (
    SMALL,
    brute_force_features,
    drain,
    expected_late_ids,
    produce_small,
)


@pytest.fixture(params=["auto", "window functions", "range join"])
def consumed(
    request: pytest.FixtureRequest, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[duckdb.DuckDBPyConnection, pl.DataFrame, list]:
    """The small stream consumed in batches of 250, with either evaluation strategy forced."""
    pairs = {
        "auto": windows.JOIN_PAIRS_PER_CONTEXT_ROW,
        "window functions": -1.0,
        "range join": 1e18,
    }
    monkeypatch.setattr(windows, "JOIN_PAIRS_PER_CONTEXT_ROW", pairs[request.param])
    log, stream = produce_small()
    con = duckdb.connect(str(get_settings().warehouse_path))
    reports = drain(con, log, batch=250)
    late = expected_late_ids(stream.events, log.partitions)
    truth = stream.events.filter(~pl.col("resend")).with_columns(
        pl.col("event_time").dt.replace_time_zone(None).cast(pl.Datetime("us"))
    )
    stored_late = {
        r[0] for r in con.execute("SELECT event_id FROM payments_silver.late_events").fetchall()
    }
    assert stored_late == late
    yield con, truth.filter(~pl.col("event_id").is_in(list(late))), reports
    con.close()


def test_every_window_of_every_card_equals_brute_force(consumed) -> None:
    con, truth, reports = consumed
    assert sum(r.feature_rows - r.admitted for r in reports) > 0, "late events recomputed rows"
    expected = brute_force_features(truth)
    actual = con.execute("FROM payments_gold.user_window_features").pl()
    assert actual.height == len(expected) == truth.height
    mismatches = []
    for row in actual.iter_rows(named=True):
        want = expected[row["event_id"]]
        for column, value in want.items():
            got = row[column]
            if isinstance(value, float) and got is not None:
                same = math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = got == value
            if not same:
                mismatches.append(f"{row['event_id']} {column}: {got!r} != {value!r}")
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:5]}"


def test_incremental_equals_one_full_recomputation(consumed) -> None:
    con, _, _ = consumed
    con.execute(
        f"CREATE TEMP TABLE full_features AS {full_features_sql('payments_silver.transactions')}"
    )
    columns = [d[0] for d in con.execute("FROM full_features LIMIT 0").description]
    floats = {"mean_1m", "mean_5m", "mean_1h", "history_mean_1h", "history_std_1h", "zscore_1h"}
    differs = " OR ".join(
        f"abs(f.{c} - i.{c}) > 1e-9 * (1 + abs(f.{c})) OR (f.{c} IS NULL) <> (i.{c} IS NULL)"
        if c in floats
        else f"f.{c} IS DISTINCT FROM i.{c}"
        for c in columns
    )
    counts = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE {differs}),
                   (SELECT count(*) FROM full_features), (SELECT count(*) FROM
                    payments_gold.user_window_features)
            FROM full_features f JOIN payments_gold.user_window_features i USING (event_id)"""
    ).fetchone()
    assert counts is not None
    joined, different, full_rows, incremental_rows = counts
    assert joined == full_rows == incremental_rows > 0
    assert different == 0


def test_alerts_written_incrementally_equal_one_full_evaluation(consumed) -> None:
    """Batches re-evaluate the rules only where their features changed; the result equals the
    rules evaluated once over every stored feature row."""
    con, _, reports = consumed
    alerts._centroids(con)
    con.execute(f"CREATE TEMP TABLE full_alerts AS {alerts.full_alerts_sql()}")
    columns = [d[0] for d in con.execute("FROM full_alerts LIMIT 0").description]
    floats = {"zscore_1h", "speed_kmh"}
    differs = " OR ".join(
        f"abs(f.{c} - i.{c}) > 1e-9 * (1 + abs(f.{c})) OR (f.{c} IS NULL) <> (i.{c} IS NULL)"
        if c in floats
        else f"f.{c} IS DISTINCT FROM i.{c}"
        for c in columns
    )
    counts = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE {differs}),
                   (SELECT count(*) FROM full_alerts),
                   (SELECT count(*) FROM payments_gold.fraud_alerts)
            FROM full_alerts f JOIN payments_gold.fraud_alerts i USING (event_id)"""
    ).fetchone()
    assert counts is not None
    joined, different, full_rows, incremental_rows = counts
    assert joined == full_rows == incremental_rows > 0
    assert different == 0
    assert sum(r.alerts_changed for r in reports) > 0


def test_window_state_is_pruned_and_windows_stay_exact(data_home: Path) -> None:
    """Over two hours of stream the window state drops what no frame can reach any more, and
    every window still equals the brute force."""
    config = replace(SMALL, events=2_500, events_per_second=0.3, seed=23)
    log, stream = produce_small(config)
    con = duckdb.connect(str(get_settings().warehouse_path))
    drain(con, log, batch=300)
    late = expected_late_ids(stream.events, log.partitions)
    truth = stream.events.filter(~pl.col("resend") & ~pl.col("event_id").is_in(list(late)))
    truth = truth.with_columns(
        pl.col("event_time").dt.replace_time_zone(None).cast(pl.Datetime("us"))
    )
    counts = con.execute(
        """SELECT (SELECT count(*) FROM stream_state.payments_card_events),
                  (SELECT count(*) FROM payments_silver.transactions),
                  (SELECT min(event_time) FROM stream_state.payments_card_events),
                  (SELECT min(stream_time) FROM stream_state.partition_time)"""
    ).fetchone()
    assert counts is not None
    state_rows, silver_rows, oldest_kept, slowest = counts
    assert 0 < state_rows < silver_rows / 2
    assert oldest_kept >= slowest - timedelta(hours=1, seconds=120)
    expected = brute_force_features(truth)
    actual = con.execute("FROM payments_gold.user_window_features").pl()
    assert actual.height == len(expected)
    wrong = [
        (row["event_id"], column)
        for row in actual.iter_rows(named=True)
        for column, value in expected[row["event_id"]].items()
        if not (
            math.isclose(row[column], value, rel_tol=1e-9, abs_tol=1e-9)
            if isinstance(value, float) and row[column] is not None
            else row[column] == value
        )
    ]
    assert not wrong, f"{len(wrong)} mismatches, e.g. {wrong[:5]}"
    con.close()
