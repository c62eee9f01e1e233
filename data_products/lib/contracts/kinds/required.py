"""``required``: the value is present (the raw text is not empty or a declared missing value)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl
from open_data_contract_standard.model import SchemaProperty

from data_products.lib.contracts.frames import (
    has_raw,
    needs_column,
    raw_column,
    raw_is_empty,
    sql_identifier,
    sql_raw_is_empty,
)
from data_products.lib.contracts.model import Column, Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


class Required(Kind):
    name = "required"
    row_rule = True
    metrics = frozenset({"nullValues", "missingValues"})
    declaration_order = 10
    uses_threshold = True
    shows_delivered_text = True
    enforces_not_null = True
    in_column_schema = False

    def declared(
        self,
        compiler: Compiler,
        where: str,
        prop: SchemaProperty,
        column: Column,
        options: dict[str, Any],
    ) -> dict[str, Any] | None:
        return {} if prop.required else None

    def declared_why(self, rule: Rule) -> str:
        return f"{rule.column} is declared required: a row without it cannot be used."

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        threshold = compiler.threshold(item.where, item.item)
        if item.column is None:
            metric = item.item.metric or item.item.rule
            raise compiler.fail(
                f"{item.where}.metric", f"{metric} checks a column: declare it on the property"
            )
        missing = item.arguments.get("missingValues") or []
        if not isinstance(missing, list) or not all(isinstance(v, str) for v in missing):
            raise compiler.fail(
                f"{item.where}.arguments.missingValues", "expected a list of strings"
            )
        return Rule(
            kind=self.name,
            threshold_pct=threshold,
            missing_values=tuple(dict.fromkeys(["", *missing])),
            **item.common,
        )

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        column = needs_column(rule)
        if has_raw(rule, columns):
            return raw_is_empty(rule, raw_column(column))
        return pl.col(column).is_null()

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        column = needs_column(rule)
        if has_raw(rule, columns):
            return sql_raw_is_empty(rule, raw_column(column))
        return f"({sql_identifier(column)} IS NULL)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        return [f"{rule.column} is empty"]

    def constraint_text(self, rule: Rule) -> str:
        return "required"


KIND = Required()
