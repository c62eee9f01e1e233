"""Fraud rules reach their targets against ground truth; the ledger balances; reconciliation finds
exactly the breaks injected into the settlement file, and no rounding noise."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from assets.payments.alerts import PRECISION_TARGET, RECALL_TARGET, evaluate_alerts
from assets.payments.demo import DEMO
from assets.payments.ledger import balance_report
from assets.payments.produce import open_topic, produce
from assets.payments.reconciliation import reconcile_day
from assets.payments.settlement import settlement_dir
from data_products.lib.settings import get_settings
from tests.payments.helpers import drain


@pytest.fixture
def demo_stream(data_home: Path):
    log = open_topic()
    produce(DEMO, settlement=True, log=log)
    con = duckdb.connect(str(get_settings().warehouse_path))
    drain(con, log, batch=7_000)
    yield con
    con.close()


def test_fraud_alerts_meet_precision_and_recall_targets(demo_stream) -> None:
    labels = pl.read_parquet(get_settings().truth / "payments" / "labels-demo00000.parquet")
    scores = evaluate_alerts(demo_stream, labels, final_before=None)
    assert scores["true_positives"] + scores["false_negatives"] >= 100
    assert scores["recall"] >= RECALL_TARGET, scores
    assert scores["precision"] >= PRECISION_TARGET, scores
    # Every pattern is caught by its own rule, not only by chance overlap with another.
    caught = (
        demo_stream.execute("SELECT rules FROM payments_gold.fraud_alerts")
        .pl()["rules"]
        .str.split(",")
        .explode()
        .unique()
        .to_list()
    )
    assert set(caught) == {"velocity", "amount_spike", "impossible_travel"}


def test_ledger_balances_and_books_late_events_too(demo_stream) -> None:
    report = balance_report(demo_stream, batch_id=None)
    assert report["total_balanced"] and report["unbalanced_in_scope"] == 0
    assert report["control_totals_match"], "the carried totals equal the ledger's sums"
    counts = demo_stream.execute(
        """SELECT (SELECT count(*) FROM payments_silver.transactions),
                  (SELECT count(*) FROM payments_silver.late_events),
                  (SELECT count(*) FROM payments_gold.ledger WHERE entry_no = 1)"""
    ).fetchone()
    assert counts is not None and counts[1] > 0
    labels = pl.read_parquet(get_settings().truth / "payments" / "labels-demo00000.parquet")
    assert counts[0] + counts[1] == counts[2] == labels.height


def test_an_entry_written_outside_a_batch_unbalances_the_ledger(demo_stream) -> None:
    demo_stream.execute(
        """INSERT INTO payments_gold.ledger
           SELECT event_id, 4, 'suspense:USD', 'credit', 1.00, currency, merchant_id,
                  booking_date, event_time, 'manual'
           FROM payments_gold.ledger WHERE entry_no = 1 ORDER BY event_id LIMIT 1"""
    )
    report = balance_report(demo_stream, batch_id=None)
    assert report["unbalanced_in_scope"] == 1
    assert not report["total_balanced"] and not report["control_totals_match"]


def test_reconciliation_finds_exactly_the_injected_breaks(demo_stream) -> None:
    days = sorted(p.stem for p in settlement_dir().glob("*.csv"))
    assert days
    found = set()
    for day in days:
        for date, merchant, currency, kind, _, _ in reconcile_day(
            demo_stream, day, now=datetime(2026, 3, 2)
        ):
            found.add((date, merchant, currency, kind))
    injected = pl.read_parquet(get_settings().truth / "payments" / "settlement_breaks.parquet")
    expected = {(d.isoformat(), m, c, k) for d, m, c, k in injected.iter_rows()}
    assert expected and found == expected
    # Re-running a day replaces it.
    before = demo_stream.execute("SELECT count(*) FROM payments_gold.reconciliation").fetchone()
    reconcile_day(demo_stream, days[0], now=datetime(2026, 3, 3))
    after = demo_stream.execute("SELECT count(*) FROM payments_gold.reconciliation").fetchone()
    assert before == after
