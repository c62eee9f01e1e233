"""The double-entry ledger: every distinct transaction booked once, as balanced entries.

An acquirer's view of a card sale of amount A with fee F = round(A x 1.5 %, 2):
    1 debit   card_clearing:<currency>        A   (owed to us by the card network)
    2 credit  merchant_payable:<merchant_id>  A-F (owed by us to the merchant)
    3 credit  fee_income:<currency>           F   (our revenue)
Amounts are DECIMAL(18,2), so debits equal credits exactly, per transaction and in total.

Events later than the allowed lateness are booked too: they miss the window features, but the
money moved, and the settlement file counts them (reconciliation would break otherwise).
"""

from __future__ import annotations

import duckdb

from assets.payments.tables import LEDGER

FEE_RATE = "0.015"


def book_transactions(con: duckdb.DuckDBPyConnection, source: str, *, batch_id: str) -> int:
    """Book every transaction of temp table ``source`` (distinct, never booked before).

    Returns the number of entries written."""
    # One scan of the source crossed with the three entry kinds: the former UNION ALL of three
    # SELECTs read the source three times and took ~1.7x as long (4.6 s vs 2.7 s per million
    # transactions), the largest write of a batch after the features.
    con.execute(
        f"""INSERT INTO {LEDGER.table}
        WITH tx AS (
            SELECT event_id, amount, currency, merchant_id, event_time,
                   round(amount * {FEE_RATE}::DECIMAL(6,4), 2)::DECIMAL(18,2) AS fee
            FROM {source}),
        entries(entry_no, side) AS (VALUES (1, 'debit'), (2, 'credit'), (3, 'credit'))
        SELECT tx.event_id, e.entry_no,
               CASE e.entry_no WHEN 1 THEN 'card_clearing:' || currency
                               WHEN 2 THEN 'merchant_payable:' || merchant_id
                               ELSE 'fee_income:' || currency END,
               e.side,
               (CASE e.entry_no WHEN 1 THEN amount WHEN 2 THEN amount - fee ELSE fee END)
                   ::DECIMAL(18,2),
               currency, merchant_id, event_time::DATE, event_time, $batch_id
        FROM tx CROSS JOIN entries e""",
        {"batch_id": batch_id},
    )
    row = con.execute(f"SELECT count(*) * 3 FROM {source}").fetchone()
    return int(row[0]) if row else 0


def balance_report(con: duckdb.DuckDBPyConnection, *, scope: str | None) -> dict[str, object]:
    """Debits vs credits per transaction (of the transactions in table ``scope``, or all) and in
    total, with a sample of unbalanced transactions. A scope is read through its event-time
    span, so checking one batch does not scan the whole ledger."""
    where = (
        ""
        if scope is None
        else f"""WHERE event_time BETWEEN (SELECT min(event_time) FROM {scope})
                                      AND (SELECT max(event_time) FROM {scope})
                   AND event_id IN (SELECT event_id FROM {scope})"""
    )
    unbalanced = con.execute(
        f"""SELECT event_id, sum(amount) FILTER (WHERE side = 'debit') AS debits,
                   sum(amount) FILTER (WHERE side = 'credit') AS credits
            FROM {LEDGER.table} {where} GROUP BY event_id
            HAVING coalesce(debits, 0) <> coalesce(credits, 0) ORDER BY event_id LIMIT 20"""
    ).fetchall()
    totals = con.execute(
        f"""SELECT coalesce(sum(amount) FILTER (WHERE side = 'debit'), 0),
                   coalesce(sum(amount) FILTER (WHERE side = 'credit'), 0),
                   count(*) FILTER (WHERE entry_no = 1)
            FROM {LEDGER.table}"""
    ).fetchone()
    debits, credits, transactions = totals if totals else (0, 0, 0)
    return {
        "unbalanced_sample": [f"{e}: debits {d} credits {c}" for e, d, c in unbalanced],
        "unbalanced_in_scope": len(unbalanced),
        "total_debits": float(debits),
        "total_credits": float(credits),
        "total_balanced": debits == credits,
        "transactions_booked": int(transactions),
    }
