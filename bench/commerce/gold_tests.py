"""The gold layer's data tests (``dbt_project/models/marts/commerce/*.yml``), as data.

The platform runs them as dbt tests; the DuckDB implementation turns each into a count query and
the pandas one into frame operations, so all three run the same checks. A test passes when it
finds no failing row, as dbt's default (``error_if: != 0``) does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the DuckDB process never imports pandas
    import pandas as pd

PandasPredicate = Callable[[Any], Any]


@dataclass(frozen=True)
class GoldTest:
    name: str
    table: str
    kind: str  # not_null | unique | accepted_values | relationships | expression | unique_combo
    columns: tuple[str, ...] = ()
    values: tuple[object, ...] = ()
    to_table: str | None = None
    to_column: str | None = None
    sql: str | None = None  # expression kind: rows pass where this is true (NULL fails)
    passes: PandasPredicate | None = None  # the same expression for pandas
    where: str | None = None  # a boolean column: only those rows are tested


def _not_null(table: str, *columns: str) -> list[GoldTest]:
    return [GoldTest(f"not_null_{table}_{c}", table, "not_null", (c,)) for c in columns]


def _unique(table: str, *columns: str) -> list[GoldTest]:
    return [GoldTest(f"unique_{table}_{c}", table, "unique", (c,)) for c in columns]


def _accepted(table: str, column: str, values: tuple[object, ...]) -> GoldTest:
    return GoldTest(
        f"accepted_values_{table}_{column}", table, "accepted_values", (column,), values
    )


def _relationship(table: str, column: str, to_table: str, to_column: str) -> GoldTest:
    return GoldTest(
        f"relationships_{table}_{column}__{to_table}",
        table,
        "relationships",
        (column,),
        to_table=to_table,
        to_column=to_column,
    )


def _combo(name: str, table: str, *columns: str) -> GoldTest:
    return GoldTest(name, table, "unique_combo", columns)


def _expression(name: str, table: str, sql: str, passes: PandasPredicate) -> GoldTest:
    return GoldTest(name, table, "expression", sql=sql, passes=passes)


_SCORES = (1, 2, 3, 4, 5)
_RFM_SEGMENTS = ("champions", "loyal", "new_customers", "at_risk", "hibernating", "needs_attention")

GOLD_TESTS: tuple[GoldTest, ...] = (
    *_unique("dim_customer", "customer_sk"),
    *_not_null(
        "dim_customer",
        "customer_sk",
        "customer_id",
        "version_number",
        "valid_from",
        "valid_to",
        "is_current",
    ),
    _accepted("dim_customer", "segment", ("consumer", "business", "vip")),
    _expression(
        "dim_customer_valid_from_before_valid_to",
        "dim_customer",
        "valid_from < valid_to",
        lambda d: d["valid_from"] < d["valid_to"],
    ),
    GoldTest(
        "dim_customer_one_current_version_per_customer",
        "dim_customer",
        "unique",
        ("customer_id",),
        where="is_current",
    ),
    _combo(
        "dim_customer_versions_do_not_share_a_start", "dim_customer", "customer_id", "valid_from"
    ),
    *_unique("customer_sessions", "session_id"),
    *_not_null("customer_sessions", "session_id", "customer_id"),
    _expression(
        "customer_sessions_end_not_before_start",
        "customer_sessions",
        "session_end >= session_start and orders >= 1",
        lambda d: (d["session_end"] >= d["session_start"]) & (d["orders"] >= 1),
    ),
    *_unique("dim_product", "product_sk", "product_id"),
    *_not_null("dim_product", "product_sk", "product_id", "is_in_latest_catalog"),
    *_not_null("top_products_daily", "date_day", "product_rank", "product_id"),
    _relationship("top_products_daily", "date_key", "dim_date", "date_key"),
    _accepted("top_products_daily", "product_rank", _SCORES),
    _relationship("top_products_daily", "product_sk", "dim_product", "product_sk"),
    _combo(
        "top_products_daily_one_product_per_rank", "top_products_daily", "date_day", "product_rank"
    ),
    _combo(
        "top_products_daily_one_rank_per_product", "top_products_daily", "date_day", "product_id"
    ),
    *_unique("dim_date", "date_key", "date_day"),
    *_not_null("dim_date", "date_key", "date_day"),
    *_not_null("monthly_retention", "cohort_month", "month_offset"),
    _combo(
        "monthly_retention_one_row_per_cohort_and_offset",
        "monthly_retention",
        "cohort_month",
        "month_offset",
    ),
    _expression(
        "monthly_retention_retained_within_cohort",
        "monthly_retention",
        "retained_customers between 0 and cohort_size "
        "and (month_offset > 0 or retained_customers = cohort_size)",
        lambda d: (
            d["retained_customers"].between(0, d["cohort_size"])
            & ((d["month_offset"] > 0) | (d["retained_customers"] == d["cohort_size"]))
        ),
    ),
    *_unique("fct_orders", "order_line_id"),
    *_not_null(
        "fct_orders",
        "order_line_id",
        "order_id",
        "line_no",
        "customer_sk",
        "product_sk",
        "date_key",
        "customer_id",
        "product_id",
        "order_ts",
        "partition_date",
        "is_revenue",
        "line_amount_usd",
    ),
    _relationship("fct_orders", "customer_sk", "dim_customer", "customer_sk"),
    _relationship("fct_orders", "product_sk", "dim_product", "product_sk"),
    _relationship("fct_orders", "date_key", "dim_date", "date_key"),
    _accepted("fct_orders", "status", ("placed", "shipped", "cancelled", "returned")),
    _expression(
        "fct_orders_amounts_not_negative",
        "fct_orders",
        "line_amount_usd >= 0 and quantity >= 1",
        lambda d: (d["line_amount_usd"] >= 0) & (d["quantity"] >= 1),
    ),
    *_unique("rfm_segments", "customer_id"),
    *_not_null("rfm_segments", "customer_id", "segment"),
    _accepted("rfm_segments", "recency_score", _SCORES),
    _accepted("rfm_segments", "frequency_score", _SCORES),
    _accepted("rfm_segments", "monetary_score", _SCORES),
    _accepted("rfm_segments", "segment", _RFM_SEGMENTS),
    *_unique("daily_revenue", "date_day"),
    *_not_null("daily_revenue", "date_day", "date_key"),
    _relationship("daily_revenue", "date_key", "dim_date", "date_key"),
    _expression(
        "daily_revenue_counts_consistent",
        "daily_revenue",
        "revenue_orders <= orders and revenue_usd >= 0 and cumulative_revenue_usd >= revenue_usd",
        lambda d: (
            (d["revenue_orders"] <= d["orders"])
            & (d["revenue_usd"] >= 0)
            & (d["cumulative_revenue_usd"] >= d["revenue_usd"])
        ),
    ),
)


def failing_rows_sql(test: GoldTest, schema: str) -> str:
    """A query counting the rows (or keys) that fail ``test`` in ``<schema>.<table>``."""
    table = f"{schema}.{test.table}"
    where = f"WHERE {test.where}" if test.where else ""
    if test.kind == "not_null":
        return f"SELECT count(*) FROM {table} WHERE {test.columns[0]} IS NULL"
    if test.kind in ("unique", "unique_combo"):
        columns = ", ".join(test.columns)
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in test.columns)
        where = f"WHERE {test.where} AND {not_null}" if test.where else f"WHERE {not_null}"
        if test.kind == "unique_combo":
            where = f"WHERE {test.where}" if test.where else ""
        return (
            f"SELECT count(*) FROM (SELECT {columns} FROM {table} {where} "
            f"GROUP BY {columns} HAVING count(*) > 1)"
        )
    if test.kind == "accepted_values":
        values = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in test.values)
        return f"SELECT count(*) FROM {table} WHERE {test.columns[0]} NOT IN ({values})"
    if test.kind == "relationships":
        column = test.columns[0]
        return (
            f"SELECT count(*) FROM {table} AS child WHERE child.{column} IS NOT NULL AND NOT "
            f"EXISTS (SELECT 1 FROM {schema}.{test.to_table} AS parent "
            f"WHERE parent.{test.to_column} = child.{column})"
        )
    if test.kind == "expression":
        return f"SELECT count(*) FROM {table} WHERE NOT coalesce(({test.sql}), false)"
    raise ValueError(f"unknown test kind {test.kind!r} ({test.name})")


def failing_rows_pandas(test: GoldTest, tables: dict[str, pd.DataFrame]) -> int:
    """The same count on pandas frames."""
    frame = tables[test.table]
    if test.where:
        frame = frame[frame[test.where].fillna(False).astype(bool)]
    if test.kind == "not_null":
        return int(frame[test.columns[0]].isna().sum())
    if test.kind in ("unique", "unique_combo"):
        keys = frame[list(test.columns)]
        if test.kind == "unique":
            keys = keys.dropna()
        counts = keys.value_counts(dropna=False)
        return int((counts > 1).sum())
    if test.kind == "accepted_values":
        column = frame[test.columns[0]].dropna()
        return int((~column.isin(list(test.values))).sum())
    if test.kind == "relationships":
        column = frame[test.columns[0]].dropna()
        parent = tables[str(test.to_table)][str(test.to_column)]
        return int((~column.isin(parent)).sum())
    if test.kind == "expression":
        assert test.passes is not None
        passes = test.passes(frame)
        return int((~passes.fillna(False).astype(bool)).sum())
    raise ValueError(f"unknown test kind {test.kind!r} ({test.name})")
