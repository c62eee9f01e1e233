"""The payments tables in the DuckDB warehouse (schemas ``payments_<layer>``).

Timestamps are ``TIMESTAMP`` holding UTC (the stream's ``...Z`` times, without a zone), money is
``DECIMAL(18,2)`` from silver on, so window sums and ledger balances are exact, not float-rounded.
The big tables carry no primary-key index: an ART index would cost more than the batch insert,
and the commit protocol plus the checks (``event_id_unique``, ``balanced``) guard the keys.
"""

from __future__ import annotations

import duckdb

from assets.payments.reference import ALLOWED_LATENESS_S
from data_products.lib.keys import DatasetName
from data_products.lib.microbatch import STATE_SCHEMA, ensure_state

BRONZE = DatasetName("payments", "bronze", "transactions")
SILVER = DatasetName("payments", "silver", "transactions")
LATE = DatasetName("payments", "silver", "late_events")
FEATURES = DatasetName("payments", "gold", "user_window_features")
ALERTS = DatasetName("payments", "gold", "fraud_alerts")
LEDGER = DatasetName("payments", "gold", "ledger")
RECONCILIATION = DatasetName("payments", "gold", "reconciliation")
QUARANTINE = DatasetName("payments", "silver", "transactions_quarantine")

CARD_EVENTS = f"{STATE_SCHEMA}.payments_card_events"
"""Window state: the admitted events of the last hour (plus lateness) that feature frames can
still reach, narrow and keyed by an integer card key (``CARD_KEY``). Why not read them from
silver: silver is wide and text-keyed, and every batch run opens the warehouse cold, so finding
the touched cards' last hour there decompressed every recent silver row of five columns (text
ids included) and hashed the text card id: 1.4 CPU s per batch at 3 M rows, growing with the
stream; the same read here costs 0.3 CPU s."""

LEDGER_TOTALS = f"{STATE_SCHEMA}.payments_ledger_totals"
"""One row: the ledger's debits, credits and transactions, carried forward by every batch."""

CARD_KEY = "md5_number(user_id)"
"""A 128-bit card key: MD5 is fixed by definition, unlike DuckDB's ``hash`` (which may change
between releases and would silently orphan the stored state), and 128 bits make a collision
between two cards negligible (n^2 / 2^129: 1e-27 for a billion cards)."""

_TRANSACTION_COLUMNS = """
    event_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, merchant_id VARCHAR NOT NULL,
    amount DECIMAL(18,2) NOT NULL, currency VARCHAR NOT NULL, country VARCHAR NOT NULL,
    device_id VARCHAR, event_time TIMESTAMP NOT NULL, event_hour TIMESTAMP NOT NULL,
    log_partition INTEGER NOT NULL, log_offset BIGINT NOT NULL, batch_id VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL"""

_WINDOW_COLUMNS = ",\n".join(
    f"count_{w} BIGINT NOT NULL, sum_{w} DECIMAL(38,2) NOT NULL, mean_{w} DOUBLE NOT NULL, "
    f"max_{w} DECIMAL(18,2) NOT NULL"
    for w in ("1m", "5m", "1h")
)

DDL = (
    "CREATE SCHEMA IF NOT EXISTS payments_bronze",
    "CREATE SCHEMA IF NOT EXISTS payments_silver",
    "CREATE SCHEMA IF NOT EXISTS payments_gold",
    f"""CREATE TABLE IF NOT EXISTS {BRONZE.table} (
        event_id VARCHAR, user_id VARCHAR, merchant_id VARCHAR, amount DOUBLE, currency VARCHAR,
        country VARCHAR, device_id VARCHAR, event_time VARCHAR, event_hour TIMESTAMP,
        log_partition INTEGER NOT NULL, log_offset BIGINT NOT NULL,
        log_appended_at TIMESTAMP NOT NULL,
        batch_id VARCHAR NOT NULL, ingested_at TIMESTAMP NOT NULL)""",
    f"CREATE TABLE IF NOT EXISTS {SILVER.table} ({_TRANSACTION_COLUMNS})",
    f"""CREATE TABLE IF NOT EXISTS {QUARANTINE.table} (
        rule_id VARCHAR NOT NULL, failed_rules VARCHAR[] NOT NULL, severity VARCHAR NOT NULL,
        reason VARCHAR NOT NULL, log_partition INTEGER NOT NULL, log_offset BIGINT NOT NULL,
        raw_record VARCHAR NOT NULL, event_hour TIMESTAMP, batch_id VARCHAR NOT NULL,
        quarantined_at TIMESTAMP NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {LATE.table} ({_TRANSACTION_COLUMNS},
        stream_time TIMESTAMP NOT NULL, lateness_s DOUBLE NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {FEATURES.table} (
        event_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, event_time TIMESTAMP NOT NULL,
        event_hour TIMESTAMP NOT NULL, amount DECIMAL(18,2) NOT NULL, country VARCHAR NOT NULL,
        {_WINDOW_COLUMNS},
        history_count_1h BIGINT NOT NULL, history_mean_1h DOUBLE, history_std_1h DOUBLE,
        zscore_1h DOUBLE, prev_event_time TIMESTAMP, prev_country VARCHAR,
        country_seen_1h BIGINT NOT NULL, computed_at TIMESTAMP NOT NULL,
        batch_id VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {ALERTS.table} (
        event_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, event_time TIMESTAMP NOT NULL,
        amount DECIMAL(18,2) NOT NULL, country VARCHAR NOT NULL, velocity BOOLEAN NOT NULL,
        amount_spike BOOLEAN NOT NULL, impossible_travel BOOLEAN NOT NULL,
        rules VARCHAR NOT NULL, burst_count BIGINT, zscore_1h DOUBLE, speed_kmh DOUBLE,
        alerted_at TIMESTAMP NOT NULL, batch_id VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {LEDGER.table} (
        event_id VARCHAR NOT NULL, entry_no INTEGER NOT NULL, account VARCHAR NOT NULL,
        side VARCHAR NOT NULL, amount DECIMAL(18,2) NOT NULL, currency VARCHAR NOT NULL,
        merchant_id VARCHAR NOT NULL, booking_date DATE NOT NULL, event_time TIMESTAMP NOT NULL,
        batch_id VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {CARD_EVENTS} (
        card UHUGEINT NOT NULL, event_time TIMESTAMP NOT NULL, amount DECIMAL(18,2) NOT NULL,
        country VARCHAR NOT NULL, event_id VARCHAR NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {LEDGER_TOTALS} (
        debits DECIMAL(38,2) NOT NULL, credits DECIMAL(38,2) NOT NULL,
        transactions BIGINT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.partition_time (
        consumer VARCHAR NOT NULL, topic VARCHAR NOT NULL, partition INTEGER NOT NULL,
        stream_time TIMESTAMP NOT NULL, PRIMARY KEY (consumer, topic, partition))""",
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    ensure_state(con)
    had_state = _table_exists(con, CARD_EVENTS)
    had_totals = _table_exists(con, LEDGER_TOTALS)
    for statement in DDL:
        con.execute(statement)
    if not had_totals:
        con.execute(
            f"""INSERT INTO {LEDGER_TOTALS}
            SELECT coalesce(sum(amount) FILTER (WHERE side = 'debit'), 0),
                   coalesce(sum(amount) FILTER (WHERE side = 'credit'), 0),
                   count(*) FILTER (WHERE entry_no = 1)
            FROM {LEDGER.table}"""
        )
    if not had_state:
        # A warehouse from before the window state: seed it from silver (the state is derived
        # data; silver is the record).
        con.execute(
            f"""INSERT INTO {CARD_EVENTS}
            SELECT {CARD_KEY}, event_time, amount, country, event_id
            FROM {SILVER.table}
            WHERE event_time >= (SELECT max(event_time) FROM {SILVER.table}) - {STATE_HORIZON}"""
        )


STATE_HORIZON = f"INTERVAL 1 HOUR + INTERVAL {2 * ALLOWED_LATENESS_S} SECOND"
"""How far behind the newest event the window state reaches when it is seeded from silver:
the longest frame plus twice the allowed lateness (``prune_card_events`` keeps less)."""


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    """A binder lookup of the one table, not a query over the whole catalog."""
    try:
        con.execute(f"SELECT 1 FROM {qualified} LIMIT 0")
    except duckdb.CatalogException:
        return False
    return True
