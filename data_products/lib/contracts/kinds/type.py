"""``type``: delivered text that is not empty parsed into the column's type (the transform
nulled what did not parse). Judged only where the raw text is at hand."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from data_products.lib.contracts.frames import (
    has_raw,
    needs_column,
    raw_column,
    raw_is_empty,
    sql_identifier,
    sql_raw_is_empty,
)
from data_products.lib.contracts.kinds._custom import compile_column_custom
from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


class Type(Kind):
    name = "type"
    row_rule = True
    custom_keys = frozenset()
    uses_threshold = True
    shows_delivered_text = True
    in_column_schema = False

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        return compile_column_custom(self, compiler, item)

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        column = needs_column(rule)
        if not has_raw(rule, columns):
            return pl.lit(False)
        return (~raw_is_empty(rule, raw_column(column)) & pl.col(column).is_null()).fill_null(False)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        column = needs_column(rule)
        if not has_raw(rule, columns):
            return "FALSE"
        empty = sql_raw_is_empty(rule, raw_column(column))
        return f"coalesce(NOT {empty} AND {sql_identifier(column)} IS NULL, FALSE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        return [f"{rule.column}=", value, f" is not a valid {rule.expected_type}"]

    def constraint_text(self, rule: Rule) -> str:
        return f"parses as {rule.expected_type}"


KIND = Type()
