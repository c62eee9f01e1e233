"""``pattern``: the value, as text, matches a regular expression (search semantics in both
engines: polars' ``str.contains`` and DuckDB's ``regexp_matches``; anchor it with ``^...$``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl
from open_data_contract_standard.model import SchemaProperty

from data_products.lib.contracts.frames import needs_column, sql_identifier, sql_string
from data_products.lib.contracts.kinds._values import compile_value_rule
from data_products.lib.contracts.model import Column, Rule
from data_products.lib.contracts.registry import Compiler, Item, Kind


class Pattern(Kind):
    name = "pattern"
    row_rule = True
    metrics = frozenset({"invalidValues"})
    arguments = frozenset({"pattern"})
    declaration_order = 20
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
        if "pattern" not in options:
            return None
        return compiler.pattern(f"{where}.logicalTypeOptions.pattern", options.pop("pattern"))

    def declared_why(self, rule: Rule) -> str:
        return f"{rule.column} is declared to match {rule.pattern}."

    def compile(self, compiler: Compiler, item: Item) -> Rule:
        def from_arguments(
            compiler: Compiler, where: str, args: dict[str, Any], column: Column
        ) -> dict[str, Any]:
            return compiler.pattern(f"{where}.pattern", args["pattern"])

        return compile_value_rule(self, compiler, item, from_arguments)

    def failure_expr(self, rule: Rule, columns: Collection[str]) -> pl.Expr:
        value = pl.col(needs_column(rule)).cast(pl.String)
        return value.str.contains(str(rule.pattern)).not_().fill_null(False)

    def failure_sql(self, rule: Rule, columns: Collection[str]) -> str:
        value = f"CAST({sql_identifier(needs_column(rule))} AS VARCHAR)"
        return f"coalesce(NOT regexp_matches({value}, {sql_string(str(rule.pattern))}), FALSE)"

    def reason(self, rule: Rule, value: pl.Expr) -> list[pl.Expr | str]:
        return [f"{rule.column}=", value, f" does not match {rule.pattern}"]

    def constraint_text(self, rule: Rule) -> str:
        return f"matches {rule.pattern}"


KIND = Pattern()
