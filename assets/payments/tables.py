"""The payments tables in the DuckDB warehouse (schemas ``payments_<layer>``).

Timestamps are ``TIMESTAMP`` holding UTC (the stream's ``...Z`` times, without a zone), money is
``DECIMAL(18,2)`` from silver on, so window sums and ledger balances are exact, not float-rounded.
Every table with a contract is created from it (``Contract.ddl``), the quarantine from the one
quarantine schema every domain shares (``quarantine_ddl``, plus the stream's ``_batch_id``);
bronze (as delivered, no contract) and the stream's state are declared here.
The big tables carry no primary-key index: an ART index would cost more than the batch insert,
and the commit protocol plus the checks (``event_id_unique``, ``balanced``) guard the keys.
"""

from __future__ import annotations

import functools

import duckdb
import polars as pl

from assets.payments.reference import ALLOWED_LATENESS_S
from data_products.lib.contracts import Contract, load_contract_for
from data_products.lib.contracts.model import PlatformColumn
from data_products.lib.keys import DatasetName
from data_products.lib.microbatch import STATE_SCHEMA, ensure_state
from data_products.lib.quarantine import quarantine_ddl

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

QUARANTINE_LOAD_COLUMNS = (
    PlatformColumn(
        "_batch_id", pl.String(), "VARCHAR", "Run id of the micro-batch that quarantined it.", False
    ),
)
"""What the stream's quarantine adds to the shared quarantine columns: the batch, as in silver."""

CONTRACTED = (SILVER, LATE, FEATURES, ALERTS, LEDGER, RECONCILIATION)
"""The payments tables with a contract: their DDL is the contract's (columns, physical types,
``required`` → NOT NULL, in contract order, which the stream's positional inserts follow)."""


@functools.cache
def contract(name: DatasetName) -> Contract:
    """The compiled contract of ``name``, parsed once per process: a daemon or benchmark running
    batch after batch in one process re-read and re-compiled the YAML on every batch."""
    return load_contract_for(name)


def silver_contract() -> Contract:
    """The contract whose row rules the stream applies to every record."""
    return contract(SILVER)


@functools.cache
def _ddl() -> tuple[str, ...]:
    return (
        "CREATE SCHEMA IF NOT EXISTS payments_bronze",
        "CREATE SCHEMA IF NOT EXISTS payments_silver",
        "CREATE SCHEMA IF NOT EXISTS payments_gold",
        # Bronze has no contract (as delivered: every field nullable, event_time as text).
        f"""CREATE TABLE IF NOT EXISTS {BRONZE.table} (
            event_id VARCHAR, user_id VARCHAR, merchant_id VARCHAR, amount DOUBLE,
            currency VARCHAR, country VARCHAR, device_id VARCHAR, event_time VARCHAR,
            event_hour TIMESTAMP, log_partition INTEGER NOT NULL, log_offset BIGINT NOT NULL,
            _log_appended_at TIMESTAMP NOT NULL,
            _batch_id VARCHAR NOT NULL, _ingested_at TIMESTAMP NOT NULL)""",
        quarantine_ddl(QUARANTINE, QUARANTINE_LOAD_COLUMNS),
        # The stream's contracts declare their lineage columns (log position, batch id).
        *(contract(name).ddl(platform_columns=False) for name in CONTRACTED),
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
    for statement in _ddl():
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
