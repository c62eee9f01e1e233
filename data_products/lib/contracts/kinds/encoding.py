"""``encoding``: the delivered text decoded as UTF-8 (no U+FFFD from lossy decoding)."""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from data_products.lib.contracts.frames import (
    REPLACEMENT_CHARACTER,
    has_raw,
    needs_column,
    raw_column,
    sql_identifier,
)
from data_products.lib.contracts.kinds._custom import compile_column_custom
from data_products.lib.contracts.model import Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


class Encoding(Kind):
    name = "encoding"
    row_rule = True
    custom_keys = frozenset()
    uses_threshold = True
    shows_delivered_text = True

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        return compile_column_custom(self, compiler, item)

    def _source(self, rule: Rule, columns: Collection[str]) -> str:
        column = needs_column(rule)
        return raw_column(column) if has_raw(rule, columns) else column

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        text = pl.col(self._source(rule, columns)).cast(pl.String)
        return text.str.contains(REPLACEMENT_CHARACTER, literal=True).fill_null(False)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        text = f"CAST({sql_identifier(self._source(rule, columns))} AS VARCHAR)"
        return f"coalesce(contains({text}, chr({ord(REPLACEMENT_CHARACTER)})), FALSE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        return [f"{rule.column}=", value, " has undecodable bytes (U+FFFD)"]

    def constraint_text(self, rule: Rule) -> str:
        return "valid UTF-8 (no U+FFFD)"


KIND = Encoding()
