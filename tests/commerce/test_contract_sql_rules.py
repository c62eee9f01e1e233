"""The commerce contracts' SQL rules on hand-built tables: each counts exactly the rows an
independent reading of its description says it should."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import pytest

from data_products.lib.contracts import load_contract_for

D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def _count(con: duckdb.DuckDBPyConnection, dataset: str, rule_id: str, days: list[date]) -> int:
    contract = load_contract_for(dg.AssetKey(["commerce", "silver", dataset]))
    query = contract.rule(rule_id).query or ""
    days_sql = ", ".join(f"DATE '{d.isoformat()}'" for d in days)
    sql = query.replace("{table}", contract.physical_table).replace(
        "{partition_filter}", f"partition_date IN ({days_sql})"
    )
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA commerce_silver")
    # P1 delivered on day 1 and again on day 3; P2 first on day 2; P3 first on day 3; P4 never.
    con.execute(
        "CREATE TABLE commerce_silver.products AS SELECT * FROM (VALUES "
        "('P1', DATE '2026-01-01'), ('P1', DATE '2026-01-03'), ('P2', DATE '2026-01-02'), "
        "('P3', DATE '2026-01-03')) AS t(product_id, partition_date)"
    )
    con.execute(
        "CREATE TABLE commerce_silver.order_lines AS SELECT * FROM (VALUES "
        "('O1', 1, 'P1', DATE '2026-01-01'), ('O1', 2, 'P2', DATE '2026-01-01'), "
        "('O2', 1, 'P2', DATE '2026-01-02'), ('O2', 2, 'P3', DATE '2026-01-02'), "
        "('O3', 1, 'P4', DATE '2026-01-02'), ('O3', 2, NULL, DATE '2026-01-02'), "
        "('O4', 1, 'P3', DATE '2026-01-03'), ('O4', 2, 'P1', DATE '2026-01-03')"
        ") AS t(order_id, line_no, product_id, partition_date)"
    )
    return con


def test_known_product_counts_lines_whose_product_came_later_or_never(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rule = "order_lines.product_id.known_product"
    # Day 1: P2 arrives only on day 2. Day 2: P3 arrives on day 3, P4 never; a missing id is
    # another rule's business. Day 3: every product has been delivered by then.
    assert _count(con, "order_lines", rule, [D1]) == 1
    assert _count(con, "order_lines", rule, [D2]) == 2
    assert _count(con, "order_lines", rule, [D3]) == 0
    assert _count(con, "order_lines", rule, [D1, D2, D3]) == 3
