"""``range``: a numeric value within bounds (``minimum``/``exclusiveMinimum``, ``maximum``/
``exclusiveMaximum``), declared in ``logicalTypeOptions`` or as ``invalidValues`` arguments."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl
from open_data_contract_standard.model import SchemaProperty

from data_products.lib.contracts.frames import needs_column, sql_identifier, sql_number
from data_products.lib.contracts.kinds._values import compile_value_rule
from data_products.lib.contracts.model import Column, Rule, _number
from data_products.lib.contracts.registry import Compiler, Item, Kind

RANGE_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class Range(Kind):
    name = "range"
    row_rule = True
    metrics = frozenset({"invalidValues"})
    arguments = frozenset(RANGE_KEYS)
    declaration_order = 30
    uses_threshold = True
    pandera_check = True

    def declared(
        self,
        compiler: Compiler,
        where: str,
        prop: SchemaProperty,
        column: Column,
        options: dict[str, Any],
    ) -> dict[str, Any] | None:
        bounds = {k: options.pop(k) for k in RANGE_KEYS if k in options}
        if not bounds:
            return None
        return compiler.range(f"{where}.logicalTypeOptions", bounds, column)

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        def from_arguments(
            compiler: Compiler, where: str, args: dict[str, Any], column: Column
        ) -> dict[str, Any]:
            bounds = {k: args[k] for k in RANGE_KEYS if k in args}
            return compiler.range(where, bounds, column)

        return compile_value_rule(self, compiler, item, from_arguments)

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        value = pl.col(needs_column(rule))
        failing = pl.lit(False)
        if rule.minimum is not None:
            failing = failing | (
                value <= rule.minimum if rule.exclusive_minimum else value < rule.minimum
            )
        if rule.maximum is not None:
            failing = failing | (
                value >= rule.maximum if rule.exclusive_maximum else value > rule.maximum
            )
        return failing.fill_null(False)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        value = sql_identifier(needs_column(rule))
        parts = []
        if rule.minimum is not None:
            parts.append(
                f"{value} {'<=' if rule.exclusive_minimum else '<'} {sql_number(rule.minimum)}"
            )
        if rule.maximum is not None:
            parts.append(
                f"{value} {'>=' if rule.exclusive_maximum else '>'} {sql_number(rule.maximum)}"
            )
        return f"coalesce({' OR '.join(parts) or 'FALSE'}, FALSE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        return [f"{rule.column}=", value, " ", _range_words(rule)]

    def constraint_text(self, rule: Rule) -> str:
        low, high = rule.minimum, rule.maximum
        if low is not None and high is not None:
            left = "(" if rule.exclusive_minimum else "["
            right = ")" if rule.exclusive_maximum else "]"
            return f"in {left}{_number(low)}, {_number(high)}{right}"
        if low is not None:
            return f"{'>' if rule.exclusive_minimum else '>='} {_number(low)}"
        return f"{'<' if rule.exclusive_maximum else '<='} {_number(high)}"


def _range_words(rule: Rule) -> str:
    if rule.minimum is not None and rule.maximum is not None:
        left = "(" if rule.exclusive_minimum else "["
        right = ")" if rule.exclusive_maximum else "]"
        return f"outside {left}{_number(rule.minimum)}, {_number(rule.maximum)}{right}"
    if rule.minimum is not None:
        return f"must be {'>' if rule.exclusive_minimum else '>='} {_number(rule.minimum)}"
    return f"must be {'<' if rule.exclusive_maximum else '<='} {_number(rule.maximum)}"


KIND = Range()
