"""Rule kinds: every row kind's DuckDB predicate agrees with its polars expression, and the
contract's DDL creates a table that takes its published rows."""

from __future__ import annotations

import duckdb
import polars as pl

from data_products.lib.contracts import load_contract_for
from data_products.lib.contracts.expressions import failure_expr, failure_sql
from data_products.lib.contracts.registry import kinds, row_kinds


def test_every_kind_module_is_registered() -> None:
    assert {"required", "type", "pattern", "valid_values", "range", "encoding", "flag"} == (
        row_kinds()
    )
    assert {"unique", "primary_key", "row_count", "sql"} <= set(kinds())


def test_failure_sql_agrees_with_failure_expr() -> None:
    contract = load_contract_for("payments.silver.transactions")
    frame = pl.DataFrame(
        {
            "event_id": ["e1", None, "e3", "e4"],
            "currency": ["EUR", "eur", None, "US'D"],
            "country": ["PT", "P", "DE", "ES"],
            "amount": [10.0, 0.0, -1.0, None],
        }
    )
    rules = [r for r in contract.row_rules() if r.column in frame.columns]
    assert rules
    con = duckdb.connect()
    con.register("batch", frame.to_arrow())
    for rule in rules:
        expected = frame.select(failure_expr(rule, frame.columns)).to_series().to_list()
        predicate = failure_sql(rule, frame.columns)
        got = [row[0] for row in con.execute(f"SELECT {predicate} FROM batch").fetchall()]
        assert got == expected, (rule.id, predicate)


def test_ddl_creates_the_contract_table() -> None:
    contract = load_contract_for("payments.silver.transactions")
    con = duckdb.connect()
    con.execute("CREATE SCHEMA payments_silver")
    con.execute(contract.ddl())
    columns = [r[0] for r in con.execute("DESCRIBE payments_silver.transactions").fetchall()]
    assert columns[: len(contract.columns)] == [c.name for c in contract.columns]
