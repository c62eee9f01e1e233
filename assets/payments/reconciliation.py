"""Daily reconciliation of the ledger against the card network's settlement file.

Daily-partitioned by settlement (booking) day with a single-run backfill policy: this is where a
UI backfill over a date range is meaningful in a stream domain (re-reconcile a month after a
redelivered file) while the stream itself runs as offset-range micro-batches.

Per day, merchant and currency: card-clearing debits in the ledger vs the file's gross amount and
count. A row breaks when the amounts differ by more than ``BREAK_PCT`` (0.1 %) of the larger, when
the counts differ, or when it is present on one side only. Re-running a day replaces it.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import duckdb

from assets.payments.settlement import settlement_dir
from assets.payments.tables import LEDGER, RECONCILIATION, ensure_tables
from data_products.lib.partitions import daily, describe_keys, run_partition_keys
from resources.warehouse import WarehouseResource

BREAK_PCT = 0.1
DAILY = daily("2026-03-01")


def reconcile_day(
    con: duckdb.DuckDBPyConnection, day: str, *, now: datetime
) -> list[tuple[Any, ...]]:
    """Replace ``day``'s reconciliation rows; returns the breaks (date, merchant, currency, kind,
    variance, variance_pct)."""
    path = settlement_dir() / f"{day}.csv"
    if not path.exists():
        raise FileNotFoundError(
            f"payments/gold/reconciliation {day}: no settlement file at {path}; "
            "the card network has not delivered this day yet"
        )
    ensure_tables(con)  # the reconciliation table too, from its contract
    con.execute(f"DELETE FROM {RECONCILIATION.table} WHERE settlement_date = $day", {"day": day})
    con.execute(
        f"""INSERT INTO {RECONCILIATION.table}
        WITH settled AS (
            SELECT merchant_id, currency, gross_amount::DECIMAL(38,2) AS gross,
                   transaction_count::BIGINT AS n
            FROM read_csv($path, header = true, all_varchar = true)),
        booked AS (
            SELECT merchant_id, currency, sum(amount)::DECIMAL(38,2) AS gross, count(*) AS n
            FROM {LEDGER.table} WHERE booking_date = $day AND entry_no = 1
            GROUP BY merchant_id, currency),
        joined AS (
            SELECT coalesce(b.merchant_id, s.merchant_id) AS merchant_id,
                   coalesce(b.currency, s.currency) AS currency,
                   coalesce(b.gross, 0)::DECIMAL(38,2) AS ledger_gross,
                   coalesce(b.n, 0) AS ledger_count,
                   coalesce(s.gross, 0)::DECIMAL(38,2) AS settled_gross,
                   coalesce(s.n, 0) AS settled_count,
                   b.merchant_id IS NULL AS only_settled, s.merchant_id IS NULL AS only_booked
            FROM booked b FULL OUTER JOIN settled s USING (merchant_id, currency))
        SELECT $day::DATE, merchant_id, currency, ledger_gross, ledger_count, settled_gross,
               settled_count, (settled_gross - ledger_gross)::DECIMAL(38,2) AS variance,
               coalesce(abs(settled_gross - ledger_gross)::DOUBLE
                        / nullif(greatest(abs(ledger_gross), abs(settled_gross)), 0)::DOUBLE
                        * 100, 0) AS variance_pct,
               only_settled OR only_booked OR ledger_count <> settled_count
                   OR variance_pct > {BREAK_PCT} AS is_break,
               CASE WHEN only_booked THEN 'missing_in_settlement'
                    WHEN only_settled THEN 'missing_in_ledger'
                    WHEN variance_pct > {BREAK_PCT} THEN 'amount'
                    WHEN ledger_count <> settled_count THEN 'count' END AS break_kind,
               $now::TIMESTAMP
        FROM joined""",
        {"path": str(path), "day": day, "now": now},
    )
    return con.execute(
        f"""SELECT settlement_date::VARCHAR, merchant_id, currency, break_kind, variance::DOUBLE,
                   variance_pct
            FROM {RECONCILIATION.table} WHERE settlement_date = $day AND is_break
            ORDER BY merchant_id, currency""",
        {"day": day},
    ).fetchall()


@dg.asset(
    key=RECONCILIATION.asset_key,
    description="Daily reconciliation of the ledger's card-clearing debits against the "
    "settlement file, per merchant and currency; breaks above 0.1 % variance alert.",
    kinds={"csv"},  # the settlement file it reads; policy derives duckdb from the contract
    tags={"tier": "finance"},
    deps=[LEDGER.asset_key],
    partitions_def=DAILY,
    check_specs=[
        dg.AssetCheckSpec(
            "no_breaks",
            asset=RECONCILIATION.asset_key,
            description=f"No merchant/currency/day differs from the settlement file by more than "
            f"{BREAK_PCT} % or in count, and none is missing on either side (alerts, WARN).",
        )
    ],
)
def reconciliation(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    # Bare on purpose: with check outputs Dagster compares the annotation with MaterializeResult
    # itself (`_is_result_object_type`); a parameterised one fails the definitions.
    keys = run_partition_keys(context)
    now = datetime.now(UTC).replace(tzinfo=None)
    breaks: list[tuple[Any, ...]] = []
    with warehouse.connect() as con:
        con.begin()
        try:
            for day in keys:
                breaks += reconcile_day(con, day, now=now)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        rows = con.execute(
            f"SELECT count(*) FROM {RECONCILIATION.table} WHERE settlement_date "
            "BETWEEN $lo AND $hi",
            {"lo": keys[0], "hi": keys[-1]},
        ).fetchone()
    sample = [f"{d} {m} {c}: {k} ({v:+.2f}, {p:.3f} %)" for d, m, c, k, v, p in breaks[:20]]
    for line in sample:
        context.log.warning(f"reconciliation break {line}")
    return dg.MaterializeResult(
        metadata={
            "partitions": describe_keys(keys),
            "dagster/row_count": int(rows[0]) if rows else 0,
            "breaks": len(breaks),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_breaks",
                passed=not breaks,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"{len(breaks)} break(s) against the settlement file above {BREAK_PCT} % "
                    f"variance, first: {sample[0]}"
                    if breaks
                    else f"ledger matches the settlement file within {BREAK_PCT} % "
                    f"({describe_keys(keys)})"
                ),
                metadata={"breaks": len(breaks), "sample": sample},
            )
        ],
    )
